//! The resource collections a tenant holds: users, groups, and the resource types it declares.

/// A declared resource type's place in its tenant's key space: given once, when the type is
/// first declared, and never given to another type of that tenant (so items of a deleted type
/// can never be read as another's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot(pub u16);

/// A resource collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Users (`/Users`, RFC 7643 §4.1).
    User,
    /// Groups (`/Groups`, RFC 7643 §4.2).
    Group,
    /// A resource type the tenant declared (RFC 7643 §6), by its slot.
    Declared(Slot),
}

impl Kind {
    /// The route table's stand-in for "the declared type the path's first segment names"
    /// (resolved against the tenant's types before anything runs).
    pub const DECLARED: Kind = Kind::Declared(Slot(u16::MAX));
}
