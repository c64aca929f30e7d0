//! The resource collections a tenant holds: users and groups.

/// A resource collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Users (`/Users`, RFC 7643 §4.1).
    User,
    /// Groups (`/Groups`, RFC 7643 §4.2).
    Group,
}
