//! Who is monitored: [`MemberId`], a rank of a distributed job or a named
//! component of a service; [`MemberRef`], the same borrowed; and
//! [`AsMember`], how every method of the
//! [`HealthMonitor`](crate::health::HealthMonitor) takes a member.

use std::fmt;
use std::hash::{Hash, Hasher};

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
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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

impl MemberId {
    /// The member, borrowed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::{MemberId, MemberRef};
    /// assert_eq!(MemberId::from("db").as_member_ref(), MemberRef::Component("db"));
    /// ```
    pub fn as_member_ref(&self) -> MemberRef<'_> {
        match self {
            MemberId::Rank(rank) => MemberRef::Rank(*rank),
            MemberId::Component(name) => MemberRef::Component(name),
        }
    }
}

/// Hashes as the [`MemberRef`] it borrows as, so that the monitor finds a
/// member by a borrowed name without building a `MemberId`.
impl Hash for MemberId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_member_ref().hash(state);
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.as_member_ref(), f)
    }
}

/// A member, borrowed: a rank, or a component's name as a `&str`. What the
/// [`HealthMonitor`](crate::health::HealthMonitor) looks a member up by, so
/// that a heartbeat never allocates.
///
/// # Examples
///
/// ```
/// use steadfast::health::{MemberId, MemberRef};
///
/// let db = MemberRef::Component("database");
/// assert_eq!(db.to_member_id(), MemberId::from("database"));
/// assert_eq!(MemberRef::Rank(2).to_string(), "rank 2");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberRef<'a> {
    /// A rank of a distributed job.
    Rank(usize),
    /// A named component.
    Component(&'a str),
}

impl MemberRef<'_> {
    /// The owned member.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::{MemberId, MemberRef};
    /// assert_eq!(MemberRef::Rank(1).to_member_id(), MemberId::Rank(1));
    /// ```
    pub fn to_member_id(self) -> MemberId {
        match self {
            MemberRef::Rank(rank) => MemberId::Rank(rank),
            MemberRef::Component(name) => MemberId::Component(name.to_string()),
        }
    }
}

impl fmt::Display for MemberRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemberRef::Rank(rank) => write!(f, "rank {rank}"),
            MemberRef::Component(name) => f.write_str(name),
        }
    }
}

/// How every method of a [`HealthMonitor`](crate::health::HealthMonitor)
/// takes a member: a rank as a `usize`, a component as a `&str` or a
/// `String`, or a [`MemberId`] or [`MemberRef`], by value or by reference.
///
/// A method that only looks the member up (a heartbeat, a status) borrows
/// it through [`as_member`](Self::as_member) and never allocates;
/// [`add_member`](crate::health::HealthMonitor::add_member) keeps it through
/// [`into_member_id`](Self::into_member_id), which moves an owned name
/// rather than copying it.
///
/// # Examples
///
/// ```
/// use steadfast::health::{AsMember, HealthMonitor, MemberId, MemberRef};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::health::HealthError> {
/// let monitor = HealthMonitor::default();
/// monitor.add_member(0usize);
/// monitor.add_member("database");
/// let db = MemberId::from("database");
/// monitor.heartbeat(0usize)?;
/// monitor.heartbeat("database")?;
/// monitor.heartbeat(&db)?;
/// assert!(monitor.contains(MemberRef::Rank(0)));
///
/// assert_eq!("database".as_member(), MemberRef::Component("database"));
/// assert_eq!(3usize.into_member_id(), MemberId::Rank(3));
/// # Ok(())
/// # }
/// ```
pub trait AsMember {
    /// The member, borrowed.
    fn as_member(&self) -> MemberRef<'_>;

    /// The member, owned.
    fn into_member_id(self) -> MemberId
    where
        Self: Sized,
    {
        self.as_member().to_member_id()
    }
}

impl AsMember for MemberId {
    #[inline]
    fn as_member(&self) -> MemberRef<'_> {
        self.as_member_ref()
    }

    fn into_member_id(self) -> MemberId {
        self
    }
}

impl AsMember for &MemberId {
    #[inline]
    fn as_member(&self) -> MemberRef<'_> {
        self.as_member_ref()
    }
}

impl AsMember for MemberRef<'_> {
    #[inline]
    fn as_member(&self) -> MemberRef<'_> {
        *self
    }
}

impl AsMember for usize {
    #[inline]
    fn as_member(&self) -> MemberRef<'_> {
        MemberRef::Rank(*self)
    }
}

impl AsMember for &str {
    #[inline]
    fn as_member(&self) -> MemberRef<'_> {
        MemberRef::Component(self)
    }
}

impl AsMember for String {
    #[inline]
    fn as_member(&self) -> MemberRef<'_> {
        MemberRef::Component(self)
    }

    fn into_member_id(self) -> MemberId {
        MemberId::Component(self)
    }
}

impl AsMember for &String {
    #[inline]
    fn as_member(&self) -> MemberRef<'_> {
        MemberRef::Component(self)
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

impl From<MemberRef<'_>> for MemberId {
    fn from(member: MemberRef<'_>) -> Self {
        member.to_member_id()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::hash_map::DefaultHasher;

    use super::*;

    fn hash(value: &impl Hash) -> u64 {
        let mut h = DefaultHasher::new();
        value.hash(&mut h);
        h.finish()
    }

    #[test]
    fn an_owned_member_hashes_and_compares_as_its_borrowed_form() {
        for member in [
            MemberId::Rank(0),
            MemberId::Rank(7),
            MemberId::from(""),
            MemberId::from("db"),
        ] {
            assert_eq!(hash(&member), hash(&member.as_member_ref()));
            assert_eq!(member.as_member_ref().to_member_id(), member);
            assert_eq!(member.to_string(), member.as_member_ref().to_string());
        }
    }
}
