//! The resource collections a tenant holds: users and groups.

/// A resource collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
}
