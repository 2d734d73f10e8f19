//! How the errors of the etcd client map to [`CoordinatorError`]s:
//! transient ones (etcd unavailable, a leader election, a call that did not
//! answer in time) to [`CoordinatorError::Unavailable`], which is retried,
//! the others to [`CoordinatorError::Backend`].

use std::time::Duration;

use crate::coordinator::CoordinatorError;

pub(super) fn op_timed_out(what: &str, after: Duration) -> CoordinatorError {
    CoordinatorError::Unavailable {
        message: format!("etcd did not answer {what} within {after:?}"),
        source: None,
    }
}
/// gRPC status codes (as numbers) that say a retry may succeed:
/// `CANCELLED` (the connection went away), `DEADLINE_EXCEEDED`,
/// `RESOURCE_EXHAUSTED`, `ABORTED` and `UNAVAILABLE` (etcd down, no leader,
/// leader changed, request timed out in etcd).
const TRANSIENT_GRPC_CODES: [i32; 5] = [1, 4, 8, 10, 14];
/// `UNKNOWN` and `INTERNAL`: transient when they carry a transport error.
const TRANSPORT_GRPC_CODES: [i32; 2] = [2, 13];

fn is_transient_etcd(err: &etcd_client::Error) -> bool {
    use etcd_client::Error as E;
    match err {
        E::IoError(_)
        | E::TransportError(_)
        | E::WatchError(_)
        | E::LeaseKeepAliveError(_)
        | E::EndpointError(_) => true,
        E::GRpcStatus(status) => {
            let code = i32::from(status.code());
            TRANSIENT_GRPC_CODES.contains(&code)
                || (TRANSPORT_GRPC_CODES.contains(&code)
                    && std::error::Error::source(status).is_some())
        }
        _ => false,
    }
}

/// Maps an etcd client error: transient ones to
/// [`CoordinatorError::Unavailable`], the others to
/// [`CoordinatorError::Backend`].
pub(super) fn from_etcd(context: &str, err: etcd_client::Error) -> CoordinatorError {
    let message = format!("{context}: {err}");
    if is_transient_etcd(&err) {
        CoordinatorError::Unavailable {
            message,
            source: Some(Box::new(err)),
        }
    } else {
        CoordinatorError::Backend {
            message,
            source: Some(Box::new(err)),
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_errors_map_by_kind() {
        let io = etcd_client::Error::IoError(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        ));
        let mapped = from_etcd("get", io);
        assert!(matches!(mapped, CoordinatorError::Unavailable { .. }));
        assert!(std::error::Error::source(&mapped).is_some());
        let invalid = from_etcd("connect", etcd_client::Error::InvalidArgs("bad".into()));
        assert!(matches!(invalid, CoordinatorError::Backend { .. }));
        assert!(invalid.to_string().contains("connect"));
        let watch = from_etcd("watch", etcd_client::Error::WatchError("closed".into()));
        assert!(matches!(watch, CoordinatorError::Unavailable { .. }));
    }
}
