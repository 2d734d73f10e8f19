//! Who is monitored: [`MemberId`], a rank of a distributed job or a named
//! component of a service.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A monitored member: a rank of a distributed job, or a named component of a
/// service (a database, a queue, a worker pool).
///
/// Ranks and components live side by side in one
/// [`HealthMonitor`](crate::health::HealthMonitor). A rank converts from a
/// `usize`, a component from a `&str` or a `String`. It displays as
/// `rank 3` or as the component's name.
///
/// # Examples
///
/// ```
/// use steadfast::health::MemberId;
///
/// let rank = MemberId::from(3usize);
/// let db = MemberId::from("database");
/// assert_eq!(rank, MemberId::Rank(3));
/// assert_eq!(rank.to_string(), "rank 3");
/// assert_eq!(db.to_string(), "database");
/// assert_eq!(db.as_component(), Some("database"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberId {
    /// A rank of a distributed job, in `0..world_size`.
    Rank(usize),
    /// A named component.
    Component(String),
}

impl MemberId {
    /// The rank number, if this member is a rank.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::MemberId;
    /// assert_eq!(MemberId::Rank(2).as_rank(), Some(2));
    /// assert_eq!(MemberId::from("cache").as_rank(), None);
    /// ```
    pub fn as_rank(&self) -> Option<usize> {
        match self {
            MemberId::Rank(rank) => Some(*rank),
            MemberId::Component(_) => None,
        }
    }

    /// The component name, if this member is a component.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::MemberId;
    /// assert_eq!(MemberId::from("cache").as_component(), Some("cache"));
    /// assert_eq!(MemberId::Rank(0).as_component(), None);
    /// ```
    pub fn as_component(&self) -> Option<&str> {
        match self {
            MemberId::Rank(_) => None,
            MemberId::Component(name) => Some(name),
        }
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemberId::Rank(rank) => write!(f, "rank {rank}"),
            MemberId::Component(name) => f.write_str(name),
        }
    }
}

impl From<usize> for MemberId {
    fn from(rank: usize) -> Self {
        MemberId::Rank(rank)
    }
}

impl From<&str> for MemberId {
    fn from(name: &str) -> Self {
        MemberId::Component(name.to_string())
    }
}

impl From<String> for MemberId {
    fn from(name: String) -> Self {
        MemberId::Component(name)
    }
}

impl From<&MemberId> for MemberId {
    fn from(member: &MemberId) -> Self {
        member.clone()
    }
}
