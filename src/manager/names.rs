//! The names a [`CheckpointManager`](super::CheckpointManager) gives: its
//! checkpoints, `{prefix}/ckpt-{sequence:010}[-step-{step}][-{label}]`, and
//! the entries of its states, `rank-{rank:05}/{state}`; and the rules for
//! state names, labels and prefixes.
//!
//! The sequence in a name is the commit sequence rank 0 predicts: the
//! highest committed in the storage plus one when the manager first saves,
//! then one more per save it decides. What orders checkpoints is the
//! sequence the manifest records, which is the same unless a save failed
//! (its number is not reused, since saves queued after it were already
//! named) or another writer committed in between; names stay increasing
//! either way. A name says which manager wrote it: only
//! names of the form above, under the manager's prefix, are its own.

use super::error::ManagerError;

/// The characters a state name or a label may hold.
fn is_segment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Why `segment` is not a valid key segment, if it is not.
fn segment_problem(segment: &str) -> Option<String> {
    if segment.is_empty() {
        return Some("must not be empty".into());
    }
    if segment == "." || segment == ".." {
        return Some("must not be '.' or '..'".into());
    }
    if let Some(c) = segment.chars().find(|c| !is_segment_char(*c)) {
        return Some(format!(
            "may hold letters, digits, '-', '_' and '.' only, found {c:?}"
        ));
    }
    None
}

/// Checks a state name: a valid key segment.
pub(crate) fn validate_state_name(name: &str) -> Result<(), ManagerError> {
    match segment_problem(name) {
        None => Ok(()),
        Some(reason) => Err(ManagerError::InvalidStateName {
            name: name.to_string(),
            reason: format!("a state name {reason}"),
        }),
    }
}

/// Checks a checkpoint label: a valid key segment.
pub(crate) fn validate_label(label: &str) -> Result<(), ManagerError> {
    match segment_problem(label) {
        None => Ok(()),
        Some(reason) => Err(ManagerError::InvalidLabel {
            label: label.to_string(),
            reason: format!("a label {reason}"),
        }),
    }
}

/// What every name of the manager of `prefix` starts with.
fn base(prefix: &str) -> String {
    if prefix.is_empty() {
        "ckpt-".to_string()
    } else {
        format!("{prefix}/ckpt-")
    }
}

/// The name of a checkpoint.
pub(crate) fn checkpoint_name(
    prefix: &str,
    sequence: u64,
    step: Option<u64>,
    label: Option<&str>,
) -> String {
    let mut name = format!("{}{sequence:010}", base(prefix));
    if let Some(step) = step {
        name.push_str(&format!("-step-{step}"));
    }
    if let Some(label) = label {
        name.push('-');
        name.push_str(label);
    }
    name
}

/// Whether `name` is a checkpoint of the manager of `prefix`.
pub(crate) fn is_managed(prefix: &str, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(&base(prefix)) else {
        return false;
    };
    rest.len() >= 10 && rest.as_bytes()[..10].iter().all(u8::is_ascii_digit) && !rest.contains('/')
}

/// The entry of state `state` in the shard of `rank`.
pub(crate) fn entry_name(rank: usize, state: &str) -> String {
    format!("rank-{rank:05}/{state}")
}

/// The signal key under which rank 0 publishes the decisions of `stream`.
pub(crate) fn decision_key(prefix: &str, token: &str, stream: &str) -> String {
    format!("steadfast.manager/{prefix}/{token}/{stream}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::validate_name;

    #[test]
    fn names_carry_sequence_step_and_label() {
        assert_eq!(checkpoint_name("run", 7, None, None), "run/ckpt-0000000007");
        assert_eq!(
            checkpoint_name("run", 7, Some(100), Some("final")),
            "run/ckpt-0000000007-step-100-final"
        );
        assert_eq!(
            checkpoint_name("", 1, Some(2), None),
            "ckpt-0000000001-step-2"
        );
        assert!(validate_name(&checkpoint_name("a/b", 1, Some(2), Some("x.y"))).is_ok());
    }

    #[test]
    fn only_the_prefix_own_names_are_managed() {
        assert!(is_managed("run", "run/ckpt-0000000007-step-3"));
        assert!(!is_managed("run", "other/ckpt-0000000007"));
        assert!(!is_managed("run", "run/ckpt-7"));
        assert!(!is_managed("run", "run-2/ckpt-0000000007"));
        assert!(!is_managed("run", "run/ckpt-0000000007/nested"));
        assert!(is_managed("", "ckpt-0000000001"));
    }

    #[test]
    fn state_names_and_labels_are_key_segments() {
        assert!(validate_state_name("agent_state.v2-b").is_ok());
        for bad in ["", "a/b", "a b", "..", "é", "a\0"] {
            assert!(
                matches!(
                    validate_state_name(bad),
                    Err(ManagerError::InvalidStateName { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            validate_label("x/y"),
            Err(ManagerError::InvalidLabel { .. })
        ));
    }

    #[test]
    fn entries_are_scoped_by_rank() {
        assert_eq!(entry_name(3, "model"), "rank-00003/model");
    }
}
