//! Who is monitored: [`MemberId`], a rank of a distributed job, a named
//! component of a service, or a node, an agent or a service of a cluster
//! (its [`MemberKind`]); [`MemberRef`], the same borrowed; and
//! [`AsMember`], how every method of the
//! [`HealthMonitor`](crate::health::HealthMonitor) takes a member.

use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

/// A monitored member: a rank of a distributed job, a named component of a
/// service (a database, a queue, a worker pool), or a node, an agent or a
/// service of a cluster.
///
/// Every kind lives side by side in one
/// [`HealthMonitor`](crate::health::HealthMonitor), and two members of
/// different kinds are different members even with the same name
/// (`Node("a")` is not `Agent("a")`). A rank converts from a `usize`, a
/// component from a `&str` or a `String`; a node, an agent and a service are
/// built with [`MemberId::node`], [`MemberId::agent`] and
/// [`MemberId::service`] (or added with
/// [`HealthMonitor::monitor_node`](crate::health::HealthMonitor::monitor_node)
/// and its siblings). A member displays as `rank 3`, as a component's bare
/// name, or as `node web-1`, `agent a-7`, `service billing`.
///
/// The kind decides which [`Failure`](crate::health::Failure) a failure of
/// the member is reported as: a node's is a
/// [`NodeCrash`](crate::health::Failure::NodeCrash), an agent's an
/// [`AgentFailure`](crate::health::Failure::AgentFailure), a service's a
/// [`ServiceFailure`](crate::health::Failure::ServiceFailure), a rank's a
/// [`RankFailure`](crate::health::Failure::RankFailure) and a component's a
/// [`ComponentFailure`](crate::health::Failure::ComponentFailure).
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
/// assert_eq!(MemberId::node("web-1").to_string(), "node web-1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberId {
    /// A rank of a distributed job, in `0..world_size`.
    Rank(usize),
    /// A named component.
    Component(String),
    /// A node (a machine or a VM) of a cluster, by its id.
    Node(String),
    /// An agent (a worker process, a sidecar) by its id.
    Agent(String),
    /// A service (something other members call) by its name.
    Service(String),
}

/// The kind of a [`MemberId`], without its name.
///
/// # Examples
///
/// ```
/// use steadfast::health::{MemberId, MemberKind};
///
/// assert_eq!(MemberId::Rank(0).kind(), MemberKind::Rank);
/// assert_eq!(MemberId::agent("a-1").kind(), MemberKind::Agent);
/// assert_eq!(MemberKind::Service.to_string(), "service");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MemberKind {
    /// [`MemberId::Rank`].
    Rank,
    /// [`MemberId::Component`].
    Component,
    /// [`MemberId::Node`].
    Node,
    /// [`MemberId::Agent`].
    Agent,
    /// [`MemberId::Service`].
    Service,
}

impl fmt::Display for MemberKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MemberKind::Rank => "rank",
            MemberKind::Component => "component",
            MemberKind::Node => "node",
            MemberKind::Agent => "agent",
            MemberKind::Service => "service",
        })
    }
}

impl MemberId {
    /// A node of a cluster.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::MemberId;
    /// assert_eq!(MemberId::node("web-1"), MemberId::Node("web-1".into()));
    /// ```
    pub fn node(id: impl Into<String>) -> MemberId {
        MemberId::Node(id.into())
    }

    /// An agent.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::MemberId;
    /// assert_eq!(MemberId::agent("a-7").to_string(), "agent a-7");
    /// ```
    pub fn agent(id: impl Into<String>) -> MemberId {
        MemberId::Agent(id.into())
    }

    /// A service.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::MemberId;
    /// assert_eq!(MemberId::service("billing").name(), Some("billing"));
    /// ```
    pub fn service(name: impl Into<String>) -> MemberId {
        MemberId::Service(name.into())
    }

    /// The member's kind.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::{MemberId, MemberKind};
    /// assert_eq!(MemberId::from("db").kind(), MemberKind::Component);
    /// assert_eq!(MemberId::node("n").kind(), MemberKind::Node);
    /// ```
    pub fn kind(&self) -> MemberKind {
        self.as_member_ref().kind()
    }

    /// The member's name: a component's, a node's, an agent's or a
    /// service's; `None` for a rank.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::MemberId;
    /// assert_eq!(MemberId::node("web-1").name(), Some("web-1"));
    /// assert_eq!(MemberId::Rank(1).name(), None);
    /// ```
    pub fn name(&self) -> Option<&str> {
        match self {
            MemberId::Rank(_) => None,
            MemberId::Component(name)
            | MemberId::Node(name)
            | MemberId::Agent(name)
            | MemberId::Service(name) => Some(name),
        }
    }

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
            _ => None,
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
            MemberId::Component(name) => Some(name),
            _ => None,
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
            MemberId::Node(id) => MemberRef::Node(id),
            MemberId::Agent(id) => MemberRef::Agent(id),
            MemberId::Service(name) => MemberRef::Service(name),
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

/// A member, borrowed: a rank, or the name of a component, a node, an agent
/// or a service as a `&str`. What the
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
/// assert_eq!(MemberRef::Node("web-1").to_member_id(), MemberId::node("web-1"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberRef<'a> {
    /// A rank of a distributed job.
    Rank(usize),
    /// A named component.
    Component(&'a str),
    /// A node, by its id.
    Node(&'a str),
    /// An agent, by its id.
    Agent(&'a str),
    /// A service, by its name.
    Service(&'a str),
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
            MemberRef::Node(id) => MemberId::Node(id.to_string()),
            MemberRef::Agent(id) => MemberId::Agent(id.to_string()),
            MemberRef::Service(name) => MemberId::Service(name.to_string()),
        }
    }

    /// The member's kind.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::{MemberKind, MemberRef};
    /// assert_eq!(MemberRef::Agent("a-1").kind(), MemberKind::Agent);
    /// ```
    pub fn kind(self) -> MemberKind {
        match self {
            MemberRef::Rank(_) => MemberKind::Rank,
            MemberRef::Component(_) => MemberKind::Component,
            MemberRef::Node(_) => MemberKind::Node,
            MemberRef::Agent(_) => MemberKind::Agent,
            MemberRef::Service(_) => MemberKind::Service,
        }
    }
}

impl fmt::Display for MemberRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemberRef::Rank(rank) => write!(f, "rank {rank}"),
            MemberRef::Component(name) => f.write_str(name),
            MemberRef::Node(id) => write!(f, "node {id}"),
            MemberRef::Agent(id) => write!(f, "agent {id}"),
            MemberRef::Service(name) => write!(f, "service {name}"),
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
            MemberId::node("db"),
            MemberId::agent("db"),
            MemberId::service("db"),
        ] {
            assert_eq!(hash(&member), hash(&member.as_member_ref()));
            assert_eq!(member.as_member_ref().to_member_id(), member);
            assert_eq!(member.to_string(), member.as_member_ref().to_string());
        }
    }
}
