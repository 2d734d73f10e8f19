//! [`ShardData`]: what one rank saves, as a list of named entries.
//!
//! The bytes of a shard are the concatenation of its entries in the order
//! they were added; the manifest's index records where each entry starts and
//! how long it is, so that any rank of any world size can later read a single
//! entry back ([`DistributedCheckpoint::load_entry`]).
//!
//! [`DistributedCheckpoint::load_entry`]: crate::checkpoint::DistributedCheckpoint::load_entry

use std::collections::{BTreeSet, HashSet};

/// One rank's shard: named entries, stored one after the other.
///
/// Entry names must be non-empty and unique within the whole checkpoint
/// (across every rank); a save with a duplicate or empty name fails on every
/// rank, naming the rank at fault.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::ShardData;
///
/// let shard = ShardData::new()
///     .with_entry("layer.0.weight", vec![1, 2, 3])
///     .with_entry("layer.0.bias", vec![4]);
/// assert_eq!(shard.len(), 2);
/// assert_eq!(shard.total_size(), 4);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardData {
    entries: Vec<(String, Vec<u8>)>,
    /// The positions of the entries marked unchanged.
    unchanged: BTreeSet<usize>,
}

impl ShardData {
    /// A shard with no entries.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::checkpoint::ShardData::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry at the end and returns the shard (builder style).
    ///
    /// # Examples
    ///
    /// ```
    /// let shard = steadfast::checkpoint::ShardData::new().with_entry("step", b"42".to_vec());
    /// assert_eq!(shard.entries()[0].0, "step");
    /// ```
    pub fn with_entry(mut self, name: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        self.push(name, data);
        self
    }

    /// Adds an entry at the end.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut shard = steadfast::checkpoint::ShardData::new();
    /// shard.push("optimizer", vec![0; 16]);
    /// assert_eq!(shard.total_size(), 16);
    /// ```
    pub fn push(&mut self, name: impl Into<String>, data: impl Into<Vec<u8>>) {
        self.entries.push((name.into(), data.into()));
    }

    /// Adds an entry, unchanged since the base checkpoint of the save, at
    /// the end and returns the shard (builder style). See
    /// [`push_unchanged`](Self::push_unchanged).
    ///
    /// # Examples
    ///
    /// ```
    /// let shard = steadfast::checkpoint::ShardData::new()
    ///     .with_entry("step", b"43".to_vec())
    ///     .with_unchanged_entry("weights");
    /// assert!(shard.is_unchanged("weights"));
    /// assert!(!shard.is_unchanged("step"));
    /// ```
    pub fn with_unchanged_entry(mut self, name: impl Into<String>) -> Self {
        self.push_unchanged(name);
        self
    }

    /// Adds an entry at the end that has not changed since the base
    /// checkpoint of the save ([`SaveOptions::base`]): a chunked save stores
    /// it by reference to the base's chunks, without reading or hashing its
    /// bytes, and fails (on this rank, with the reason) when the base has no
    /// such entry, is not chunked the same way, or lacks one of its chunks.
    /// A save that does not chunk refuses unchanged entries.
    ///
    /// [`SaveOptions::base`]: crate::checkpoint::SaveOptions::base
    ///
    /// # Examples
    ///
    /// ```
    /// let mut shard = steadfast::checkpoint::ShardData::new();
    /// shard.push_unchanged("optimizer");
    /// assert_eq!(shard.len(), 1);
    /// assert_eq!(shard.total_size(), 0); // its bytes are the base's
    /// ```
    pub fn push_unchanged(&mut self, name: impl Into<String>) {
        self.unchanged.insert(self.entries.len());
        self.entries.push((name.into(), Vec::new()));
    }

    /// Whether the entry `name` is marked unchanged since the base
    /// checkpoint.
    ///
    /// # Examples
    ///
    /// ```
    /// let shard = steadfast::checkpoint::ShardData::new().with_unchanged_entry("a");
    /// assert!(shard.is_unchanged("a"));
    /// ```
    pub fn is_unchanged(&self, name: &str) -> bool {
        self.entries
            .iter()
            .enumerate()
            .any(|(i, (n, _))| n == name && self.unchanged.contains(&i))
    }

    /// Whether the entry at `position` is marked unchanged.
    pub(crate) fn is_unchanged_at(&self, position: usize) -> bool {
        self.unchanged.contains(&position)
    }

    /// The name of the first entry marked unchanged, if any.
    pub(crate) fn first_unchanged(&self) -> Option<&str> {
        self.unchanged
            .first()
            .and_then(|&i| self.entries.get(i))
            .map(|(name, _)| name.as_str())
    }

    /// The entries, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// let shard = steadfast::checkpoint::ShardData::new().with_entry("a", vec![1]);
    /// assert_eq!(shard.entries(), &[("a".to_string(), vec![1])]);
    /// ```
    pub fn entries(&self) -> &[(String, Vec<u8>)] {
        &self.entries
    }

    /// How many entries the shard has.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::checkpoint::ShardData::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the shard has no entries.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::checkpoint::ShardData::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The size of the shard's bytes: the sum of the entry lengths (an
    /// unchanged entry counts for nothing: its bytes are the base's).
    ///
    /// # Examples
    ///
    /// ```
    /// let shard = steadfast::checkpoint::ShardData::new().with_entry("a", vec![0; 3]);
    /// assert_eq!(shard.total_size(), 3);
    /// ```
    pub fn total_size(&self) -> u64 {
        self.entries.iter().map(|(_, d)| d.len() as u64).sum()
    }

    /// Checks the entry names: each non-empty and unique within the shard.
    pub(crate) fn check_names(&self) -> Result<(), String> {
        let mut seen = HashSet::new();
        for (name, _) in &self.entries {
            if name.is_empty() {
                return Err("an entry has an empty name".into());
            }
            if !seen.insert(name.as_str()) {
                return Err(format!("entry {name:?} is added twice"));
            }
        }
        Ok(())
    }

    /// The index of the shard: each entry's name, offset and length.
    pub(crate) fn index(&self) -> Vec<(String, u64, u64)> {
        let mut offset = 0u64;
        self.entries
            .iter()
            .map(|(name, data)| {
                let len = data.len() as u64;
                let at = (name.clone(), offset, len);
                offset += len;
                at
            })
            .collect()
    }
}

impl From<Vec<(String, Vec<u8>)>> for ShardData {
    fn from(entries: Vec<(String, Vec<u8>)>) -> Self {
        ShardData {
            entries,
            unchanged: BTreeSet::new(),
        }
    }
}

impl<N: Into<String>, D: Into<Vec<u8>>> FromIterator<(N, D)> for ShardData {
    fn from_iter<I: IntoIterator<Item = (N, D)>>(iter: I) -> Self {
        ShardData {
            entries: iter
                .into_iter()
                .map(|(n, d)| (n.into(), d.into()))
                .collect(),
            unchanged: BTreeSet::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_and_names() {
        let shard: ShardData = [("a", vec![1u8, 2]), ("b", vec![]), ("c", vec![3])]
            .into_iter()
            .collect();
        assert_eq!(
            shard.index(),
            vec![
                ("a".to_string(), 0, 2),
                ("b".to_string(), 2, 0),
                ("c".to_string(), 2, 1)
            ]
        );
        assert!(shard.check_names().is_ok());
        assert!(shard.clone().with_entry("a", vec![]).check_names().is_err());
        assert!(ShardData::new()
            .with_entry("", vec![])
            .check_names()
            .is_err());
    }
}
