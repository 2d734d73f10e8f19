//! Replicated listing: every replica lists the prefix; a key is listed only
//! when W of the replicas that answered hold a copy of it, and the listing
//! fails unless enough replicas answered for that rule to mean something.

use std::collections::BTreeMap;

use futures::future::join_all;

use super::envelope::FOOTER_LEN;
use super::{count, ReplicatedStorage};
use crate::storage::{validate_prefix, ObjectMeta, Result, StorageError};

/// Every replica's listing of a prefix, merged by key.
pub(super) struct Listings {
    /// Each key held by at least one replica: the replicas that hold it (in
    /// replica order) and the first holder's stored metadata.
    pub(super) keys: BTreeMap<String, (Vec<usize>, ObjectMeta)>,
    /// The replicas that answered.
    pub(super) answered: Vec<usize>,
    /// The replicas that failed, each with its error.
    pub(super) failures: Vec<crate::storage::ReplicaFailure>,
}

impl ReplicatedStorage {
    /// Lists `prefix` on every replica and merges the answers; fails when
    /// fewer replicas answered than a read needs.
    pub(super) async fn list_all(&self, operation: &'static str, prefix: &str) -> Result<Listings> {
        validate_prefix(prefix)?;
        let inner = &self.inner;
        let results = join_all(inner.replicas.iter().map(|s| s.storage.list(prefix))).await;
        let mut keys: BTreeMap<String, (Vec<usize>, ObjectMeta)> = BTreeMap::new();
        let mut answered = Vec::new();
        let mut failures = Vec::new();
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Ok(metas) => {
                    inner.record(i, true);
                    answered.push(i);
                    // An object shorter than a footer is no copy.
                    for meta in metas.into_iter().filter(|m| m.size >= FOOTER_LEN) {
                        keys.entry(meta.key.clone())
                            .or_insert_with(|| (Vec::new(), meta))
                            .0
                            .push(i);
                    }
                }
                Err(e) => {
                    inner.record(i, false);
                    failures.push(inner.failure(i, e));
                }
            }
        }
        let needed = inner.answers_needed();
        if answered.len() < needed {
            return Err(StorageError::QuorumNotReached {
                operation,
                key: prefix.to_string(),
                needed: count(needed),
                succeeded: count(answered.len()),
                failures: failures.into(),
            });
        }
        Ok(Listings {
            keys,
            answered,
            failures,
        })
    }

    pub(super) async fn list_replicated(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let listings = self.list_all("list", prefix).await?;
        Ok(listings
            .keys
            .into_iter()
            .filter(|(_, (holders, _))| self.inner.quorum_met(holders))
            .map(|(key, (_, meta))| ObjectMeta {
                key,
                size: meta.size - FOOTER_LEN,
                last_modified: meta.last_modified,
            })
            .collect())
    }
}
