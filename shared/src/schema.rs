//! The schema registry: RFC 7643 attribute characteristics held as data. Validation, filtering,
//! PATCH, projection and the `/Schemas` endpoint are all driven from these definitions.

use serde_json::{Map, Value, json};
use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

/// Text of a schema: borrowed for the built-in schemas, owned for a tenant's declarations.
pub type Text = Cow<'static, str>;

/// The core User schema URN (RFC 7643 §4.1).
pub const URN_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core Group schema URN (RFC 7643 §4.2).
pub const URN_GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The Enterprise User extension schema URN (RFC 7643 §4.3).
pub const URN_ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// scim-serverless's own read-only extension: the roles a user effectively holds.
pub const URN_ACCESS: &str = "urn:scim-serverless:schemas:extension:access:1.0:User";
/// The error response message URN (RFC 7644 §3.12).
pub const URN_ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// The list response message URN for query results (RFC 7644 §3.4.2).
pub const URN_LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// The PATCH operation request message URN (RFC 7644 §3.5.2).
pub const URN_PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The `POST .search` request message URN (RFC 7644 §3.4.3).
pub const URN_SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
/// The service provider configuration schema URN (RFC 7643 §5).
pub const URN_SPC: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
/// The resource type schema URN (RFC 7643 §6).
pub const URN_RESOURCE_TYPE: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
/// The schema definition schema URN, for `/Schemas` entries (RFC 7643 §7).
pub const URN_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// RFC 7643 §2.3 data types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    /// `string`: a sequence of Unicode characters.
    String,
    /// `boolean`: `true` or `false`.
    Boolean,
    /// `decimal`: a real number with at least one digit on each side of the point.
    Decimal,
    /// `integer`: a whole number with no fractional part.
    Integer,
    /// `dateTime`: an `xsd:dateTime` (RFC 3339) timestamp.
    DateTime,
    /// `binary`: base64-encoded arbitrary bytes.
    Binary,
    /// `reference`: a URI of a SCIM resource or an external one (see [`AttrDef::ref_types`]).
    Reference,
    /// `complex`: a value made of sub-attributes (one level deep).
    Complex,
}

impl AttrType {
    fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Binary => "binary",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
        }
    }
}

/// RFC 7643 §7 `mutability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    /// `readOnly`: set by the service provider only; client values are ignored.
    ReadOnly,
    /// `readWrite`: may be updated and read at any time.
    ReadWrite,
    /// `immutable`: may be set when the resource or value is added, but never changed afterwards.
    Immutable,
    /// `writeOnly`: may be set but is never returned (e.g. `password`).
    WriteOnly,
}

/// RFC 7643 §7 `returned`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    /// `always`: returned in every response, whatever `attributes` and `excludedAttributes` say.
    Always,
    /// `never`: never returned.
    Never,
    /// `default`: returned unless excluded by `excludedAttributes` or left out of `attributes`.
    Default,
    /// `request`: returned only when named in the `attributes` parameter.
    Request,
}

/// One attribute (or sub-attribute) definition.
#[derive(Debug, Clone, PartialEq)]
pub struct AttrDef {
    /// The attribute's canonical `name` (matched case-insensitively).
    pub name: Text,
    /// The attribute's data `type`.
    pub ty: AttrType,
    /// `multiValued`: the value is an array.
    pub multi: bool,
    /// `required`: a resource must carry a value for it.
    pub required: bool,
    /// `caseExact`: string values compare case-sensitively in filters and uniqueness checks.
    pub case_exact: bool,
    /// How clients may change the attribute (`mutability`).
    pub mutability: Mutability,
    /// When responses carry the attribute (`returned`).
    pub returned: Returned,
    /// `server` uniqueness: userName, group displayName, and a tenant's attributes declared so.
    pub unique: bool,
    /// The human-readable `description` published on `/Schemas`.
    pub description: Text,
    /// `canonicalValues`: the suggested values, e.g. `work` and `home` for an email `type`.
    pub canonical: Vec<Text>,
    /// `referenceTypes` of a reference attribute, e.g. `User`, `Group` or `external`.
    pub ref_types: Vec<Text>,
    /// `subAttributes` of a complex attribute; empty for simple ones.
    pub sub: Vec<AttrDef>,
}

impl AttrDef {
    /// A read-write, single-valued, case-insensitive attribute returned by default.
    pub fn new(name: impl Into<Text>, ty: AttrType, description: impl Into<Text>) -> Self {
        AttrDef {
            name: name.into(),
            ty,
            multi: false,
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            unique: false,
            description: description.into(),
            canonical: Vec::new(),
            ref_types: Vec::new(),
            sub: Vec::new(),
        }
    }
    fn multi(mut self) -> Self {
        self.multi = true;
        self
    }
    fn required(mut self) -> Self {
        self.required = true;
        self
    }
    fn exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    fn read_only(mut self) -> Self {
        self.mutability = Mutability::ReadOnly;
        self
    }
    fn write_only(mut self) -> Self {
        self.mutability = Mutability::WriteOnly;
        self.returned = Returned::Never;
        self
    }
    fn always(mut self) -> Self {
        self.returned = Returned::Always;
        self
    }
    fn unique(mut self) -> Self {
        self.unique = true;
        self
    }
    fn canonical(mut self, values: &'static [&'static str]) -> Self {
        self.canonical = values.iter().map(|v| Text::Borrowed(*v)).collect();
        self
    }
    fn refs(mut self, types: &'static [&'static str]) -> Self {
        self.ref_types = types.iter().map(|v| Text::Borrowed(*v)).collect();
        self
    }
    fn with(mut self, sub: Vec<AttrDef>) -> Self {
        self.sub = sub;
        self
    }

    /// A sub-attribute by name, case-insensitively.
    pub fn sub_attr(&self, name: &str) -> Option<&AttrDef> {
        self.sub.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// True for complex attributes.
    pub fn is_complex(&self) -> bool {
        self.ty == AttrType::Complex
    }

    /// The key a unique attribute's value is claimed under: strings folded caselessly unless the
    /// attribute is caseExact, other simple values as their JSON text; `None` for no value.
    pub fn claim_key(&self, v: &Value) -> Option<String> {
        match v {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::String(s) if self.case_exact => Some(s.clone()),
            Value::String(s) => Some(crate::casefold::fold(s)),
            Value::Number(_) | Value::Bool(_) => Some(crate::json_text(v)),
            _ => None,
        }
    }

    /// The RFC 7643 §7 representation of this attribute for `/Schemas`.
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("name".into(), json!(self.name));
        o.insert("type".into(), json!(self.ty.as_str()));
        o.insert("multiValued".into(), json!(self.multi));
        o.insert("description".into(), json!(self.description));
        o.insert("required".into(), json!(self.required));
        if self.ty != AttrType::Complex && self.ty != AttrType::Boolean {
            o.insert("caseExact".into(), json!(self.case_exact));
        }
        if !self.canonical.is_empty() {
            o.insert("canonicalValues".into(), json!(self.canonical));
        }
        if !self.ref_types.is_empty() {
            o.insert("referenceTypes".into(), json!(self.ref_types));
        }
        let m = match self.mutability {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        };
        o.insert("mutability".into(), json!(m));
        let r = match self.returned {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        };
        o.insert("returned".into(), json!(r));
        o.insert("uniqueness".into(), json!(if self.unique { "server" } else { "none" }));
        if !self.sub.is_empty() {
            o.insert("subAttributes".into(), Value::Array(self.sub.iter().map(AttrDef::to_json).collect()));
        }
        Value::Object(o)
    }
}

/// One schema (RFC 7643 §7).
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaDef {
    /// The schema URN, e.g. [`URN_USER`].
    pub id: Text,
    /// The schema's human-readable `name`, e.g. `User`.
    pub name: Text,
    /// The schema's human-readable `description`.
    pub description: Text,
    /// The top-level attribute definitions (`attributes`), in declaration order.
    pub attrs: Vec<AttrDef>,
}

impl SchemaDef {
    /// An attribute by name, case-insensitively.
    pub fn attr(&self, name: &str) -> Option<&AttrDef> {
        self.attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// [`SchemaDef::attr`] for a caller walking a client's members: the attribute after the
    /// one found last (`hint`) is tried first, so members sent in declaration order are found
    /// at once instead of by a scan each.
    pub fn attr_after(&self, name: &str, hint: &mut usize) -> Option<&AttrDef> {
        let at = match self.attrs.get(*hint) {
            Some(a) if a.name.eq_ignore_ascii_case(name) => *hint,
            _ => self.attrs.iter().position(|a| a.name.eq_ignore_ascii_case(name))?,
        };
        *hint = at + 1;
        self.attrs.get(at)
    }

    /// The `/Schemas/{id}` representation.
    pub fn to_json(&self, base_url: &str) -> Value {
        json!({
            "schemas": [URN_SCHEMA],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": self.attrs.iter().map(AttrDef::to_json).collect::<Vec<_>>(),
            "meta": {
                "resourceType": "Schema",
                "location": format!("{base_url}/Schemas/{}", self.id),
            }
        })
    }
}

/// A resource type (RFC 7643 §6): its core schema and extensions — the built-in ones, and for
/// a tenant with declarations, its own.
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// The resource type's `name`, also its `id` and `meta.resourceType`, e.g. `User`.
    pub name: Text,
    /// The `endpoint` path relative to the base URL, e.g. `/Users`.
    pub endpoint: Text,
    /// The resource type's human-readable `description`.
    pub description: Text,
    /// The core schema (`schema`), e.g. the User schema.
    pub schema: Arc<SchemaDef>,
    /// The `schemaExtensions`, e.g. the Enterprise User extension.
    pub extensions: Vec<Arc<SchemaDef>>,
    /// The URNs of the extensions every resource must carry (`required: true`; only a declared
    /// type has any).
    pub required: Vec<Text>,
    /// Stored documents may hold values no extension here declares (a tenant's retired
    /// attributes or deleted extensions): rendering must take them out.
    pub hides_values: bool,
}

impl ResourceType {
    /// The core schema followed by the extensions.
    pub fn schemas(&self) -> impl Iterator<Item = &SchemaDef> + '_ {
        std::iter::once(&*self.schema).chain(self.extensions.iter().map(|s| &**s))
    }

    /// An extension schema by URN, case-insensitively.
    pub fn extension(&self, urn: &str) -> Option<&SchemaDef> {
        self.extensions.iter().map(|s| &**s).find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// Whether every resource must carry this extension.
    pub fn requires(&self, urn: &str) -> bool {
        self.required.iter().any(|r| r.eq_ignore_ascii_case(urn))
    }

    /// A schema (core or extension) by URN, case-insensitively.
    pub fn schema_by_urn(&self, urn: &str) -> Option<&SchemaDef> {
        self.schemas().find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// The `/ResourceTypes/{name}` representation. `with_access` lists the access extension
    /// (only for tenants with a role policy, the only ones whose users carry it).
    pub fn to_json(&self, base_url: &str, with_access: bool) -> Value {
        json!({
            "schemas": [URN_RESOURCE_TYPE],
            "id": self.name,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": self.description,
            "schema": self.schema.id,
            "schemaExtensions": self.extensions.iter().filter(|s| with_access || s.id != URN_ACCESS).map(|s| json!({"schema": s.id, "required": self.requires(&s.id)})).collect::<Vec<_>>(),
            "meta": {
                "resourceType": "ResourceType",
                "location": format!("{base_url}/ResourceTypes/{}", self.name),
            }
        })
    }
}

/// Attributes common to every resource (RFC 7643 §3.1): id, externalId, meta.
pub fn common_attrs() -> &'static [AttrDef] {
    static C: OnceLock<Vec<AttrDef>> = OnceLock::new();
    C.get_or_init(|| {
        use AttrType::*;
        vec![
            AttrDef::new("id", String, "Unique identifier issued by the service provider.").exact().read_only().always().unique(),
            AttrDef::new("externalId", String, "Identifier issued by the provisioning client.").exact(),
            AttrDef::new("meta", Complex, "Resource metadata.").read_only().with(vec![
                AttrDef::new("resourceType", String, "The resource type.").exact().read_only(),
                AttrDef::new("created", DateTime, "When the resource was added.").read_only(),
                AttrDef::new("lastModified", DateTime, "When the resource was last changed.").read_only(),
                AttrDef::new("location", Reference, "The URI of the resource.").exact().read_only().refs(&["uri"]),
                AttrDef::new("version", String, "The version (ETag) of the resource.").exact().read_only(),
            ]),
        ]
    })
}

fn multi_complex(name: &'static str, desc: &'static str, value_ty: AttrType, types: &'static [&'static str]) -> AttrDef {
    use AttrType::*;
    AttrDef::new(name, Complex, desc).multi().with(vec![
        AttrDef::new("value", value_ty, "The value."),
        AttrDef::new("display", String, "A human-readable name."),
        AttrDef::new("type", String, "A label for the value's function.").canonical(types),
        AttrDef::new("primary", Boolean, "The preferred value; at most one is true."),
    ])
}

/// RFC 7643 §4.1 User.
pub fn user_schema() -> &'static SchemaDef {
    static S: OnceLock<SchemaDef> = OnceLock::new();
    S.get_or_init(|| {
        use AttrType::*;
        let mut photos = multi_complex("photos", "URLs of images of the user.", Reference, &["photo", "thumbnail"]);
        if let Some(v) = photos.sub.first_mut() {
            v.ref_types = vec![Text::Borrowed("external")];
            v.case_exact = true;
        }
        let mut x509 = multi_complex("x509Certificates", "DER-encoded X.509 certificates.", Binary, &[]);
        if let Some(v) = x509.sub.first_mut() {
            v.case_exact = true;
        }
        SchemaDef {
            id: URN_USER.into(),
            name: "User".into(),
            description: "User Account".into(),
            attrs: vec![
                AttrDef::new("userName", String, "Unique identifier for the user, typically used to sign in.").required().unique(),
                AttrDef::new("name", Complex, "The components of the user's name.").with(vec![
                    AttrDef::new("formatted", String, "The full name."),
                    AttrDef::new("familyName", String, "The family name."),
                    AttrDef::new("givenName", String, "The given name."),
                    AttrDef::new("middleName", String, "The middle name."),
                    AttrDef::new("honorificPrefix", String, "Honorific prefix."),
                    AttrDef::new("honorificSuffix", String, "Honorific suffix."),
                ]),
                AttrDef::new("displayName", String, "The name displayed to end users."),
                AttrDef::new("nickName", String, "The casual name."),
                AttrDef::new("profileUrl", Reference, "A URL of the user's online profile.").refs(&["external"]),
                AttrDef::new("title", String, "The user's title."),
                AttrDef::new("userType", String, "The relationship to the organisation."),
                AttrDef::new("preferredLanguage", String, "Preferred written or spoken language."),
                AttrDef::new("locale", String, "Default location for localisation."),
                AttrDef::new("timezone", String, "Time zone in IANA format."),
                AttrDef::new("active", Boolean, "The user's administrative status."),
                AttrDef::new("password", String, "The cleartext password; accepted, never stored in clear, never returned.").write_only(),
                multi_complex("emails", "Email addresses.", String, &["work", "home", "other"]),
                multi_complex("phoneNumbers", "Phone numbers.", String, &["work", "home", "mobile", "fax", "pager", "other"]),
                multi_complex(
                    "ims",
                    "Instant messaging addresses.",
                    String,
                    &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"],
                ),
                photos,
                AttrDef::new("addresses", Complex, "Physical mailing addresses.").multi().with(vec![
                    AttrDef::new("formatted", String, "The full address."),
                    AttrDef::new("streetAddress", String, "Street address."),
                    AttrDef::new("locality", String, "City or locality."),
                    AttrDef::new("region", String, "State or region."),
                    AttrDef::new("postalCode", String, "Postal code."),
                    AttrDef::new("country", String, "Country (ISO 3166-1 alpha-2)."),
                    AttrDef::new("type", String, "A label for the address.").canonical(&["work", "home", "other"]),
                    AttrDef::new("primary", Boolean, "The preferred address; at most one is true."),
                ]),
                AttrDef::new("groups", Complex, "Groups the user belongs to (read-only; change membership through /Groups).")
                    .multi()
                    .read_only()
                    .with(vec![
                        AttrDef::new("value", String, "The group's id.").read_only(),
                        AttrDef::new("$ref", Reference, "The group's URI.").read_only().refs(&["User", "Group"]),
                        AttrDef::new("display", String, "The group's displayName.").read_only(),
                        AttrDef::new("type", String, "direct or indirect.").read_only().canonical(&["direct", "indirect"]),
                    ]),
                multi_complex("entitlements", "Entitlements.", String, &[]),
                multi_complex("roles", "Roles.", String, &[]),
                x509,
            ],
        }
    })
}

/// RFC 7643 §4.3 Enterprise User extension.
pub fn enterprise_schema() -> &'static SchemaDef {
    enterprise_arc()
}

fn enterprise_arc() -> &'static Arc<SchemaDef> {
    static S: OnceLock<Arc<SchemaDef>> = OnceLock::new();
    S.get_or_init(|| {
        use AttrType::*;
        Arc::new(SchemaDef {
            id: URN_ENTERPRISE.into(),
            name: "EnterpriseUser".into(),
            description: "Enterprise User".into(),
            attrs: vec![
                AttrDef::new("employeeNumber", String, "Numeric or alphanumeric identifier assigned by the organisation."),
                AttrDef::new("costCenter", String, "Cost center."),
                AttrDef::new("organization", String, "Organisation."),
                AttrDef::new("division", String, "Division."),
                AttrDef::new("department", String, "Department."),
                AttrDef::new("manager", Complex, "The user's manager.").with(vec![
                    AttrDef::new("value", String, "The manager's id."),
                    AttrDef::new("$ref", Reference, "The manager's URI.").refs(&["User"]),
                    AttrDef::new("displayName", String, "The manager's displayName.").read_only(),
                ]),
            ],
        })
    })
}

/// RFC 7643 §4.2 Group. Members are stored as items of their own, not in the group document.
pub fn group_schema() -> &'static SchemaDef {
    static S: OnceLock<SchemaDef> = OnceLock::new();
    S.get_or_init(|| {
        use AttrType::*;
        let mut value = AttrDef::new("value", String, "The member's id.").exact();
        value.mutability = Mutability::Immutable;
        let mut reference = AttrDef::new("$ref", Reference, "The member's URI.").exact().refs(&["User", "Group"]);
        reference.mutability = Mutability::Immutable;
        let mut kind = AttrDef::new("type", String, "The member's resource type.").canonical(&["User", "Group"]);
        kind.mutability = Mutability::Immutable;
        SchemaDef {
            id: URN_GROUP.into(),
            name: "Group".into(),
            description: "Group".into(),
            attrs: vec![
                AttrDef::new("displayName", String, "A human-readable name for the group; unique per tenant.").required().unique(),
                AttrDef::new("members", Complex, "The members of the group.").multi().with(vec![
                    value,
                    reference,
                    AttrDef::new("display", String, "The member's display name.").read_only(),
                    kind,
                ]),
            ],
        }
    })
}

/// The Group resource type.
pub fn group_type() -> &'static ResourceType {
    static T: OnceLock<ResourceType> = OnceLock::new();
    T.get_or_init(|| ResourceType {
        name: "Group".into(),
        endpoint: "/Groups".into(),
        description: "Group".into(),
        schema: Arc::new(group_schema().clone()),
        extensions: vec![],
        required: vec![],
        hides_values: false,
    })
}

/// The access extension: roles the user effectively holds in the host application, computed
/// from its `roles` and its groups under the tenant's role policy (empty while inactive).
pub fn access_schema() -> &'static SchemaDef {
    access_arc()
}

fn access_arc() -> &'static Arc<SchemaDef> {
    static S: OnceLock<Arc<SchemaDef>> = OnceLock::new();
    S.get_or_init(|| {
        use AttrType::*;
        Arc::new(SchemaDef {
            id: URN_ACCESS.into(),
            name: "Access".into(),
            description: "Effective application roles (read-only)".into(),
            attrs: vec![
                AttrDef::new(
                    "effectiveRoles",
                    Complex,
                    "Roles the user holds: organisation roles from 'roles', workspace roles from groups.",
                )
                .multi()
                .read_only()
                .with(vec![
                    AttrDef::new("value", String, "The role.").read_only(),
                    AttrDef::new("workspace", String, "The workspace, for roles granted by a group.").read_only(),
                    AttrDef::new("source", String, "'roles', 'default' or 'group:<group id>'.").read_only(),
                ]),
            ],
        })
    })
}

/// The User resource type.
pub fn user_type() -> &'static ResourceType {
    static T: OnceLock<ResourceType> = OnceLock::new();
    T.get_or_init(|| ResourceType {
        name: "User".into(),
        endpoint: "/Users".into(),
        description: "User Account".into(),
        schema: Arc::new(user_schema().clone()),
        extensions: vec![enterprise_arc().clone(), access_arc().clone()],
        required: vec![],
        hides_values: false,
    })
}

/// Every resource type this server serves.
pub fn resource_types() -> Vec<&'static ResourceType> {
    vec![user_type(), group_type()]
}

/// Every schema this server serves on `/Schemas`.
pub fn all_schemas() -> Vec<&'static SchemaDef> {
    vec![user_schema(), enterprise_schema(), access_schema(), group_schema()]
}

/// Where an attribute path lands in a resource type: which schema, which definition.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    /// `None` for core and common attributes (stored at the top level); the URN for extensions
    /// (stored under the URN key).
    pub ext: Option<&'a str>,
    /// The attribute's definition.
    pub def: &'a AttrDef,
}

impl ResourceType {
    /// Resolves a top-level attribute name, optionally URN-qualified, case-insensitively.
    /// Unqualified names are looked up in the common attributes, the core schema, then extensions.
    pub fn resolve(&self, urn: Option<&str>, name: &str) -> Option<Resolved<'_>> {
        match urn {
            Some(u) if u.eq_ignore_ascii_case(&self.schema.id) => self.resolve(None, name).filter(|r| r.ext.is_none()),
            Some(u) => {
                let ext = self.extension(u)?;
                ext.attr(name).map(|def| Resolved { ext: Some(&ext.id), def })
            }
            None => {
                if let Some(def) = common_attrs().iter().find(|a| a.name.eq_ignore_ascii_case(name)) {
                    return Some(Resolved { ext: None, def });
                }
                if let Some(def) = self.schema.attr(name) {
                    return Some(Resolved { ext: None, def });
                }
                self.extensions.iter().find_map(|s| s.attr(name).map(|def| Resolved { ext: Some(&s.id), def }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_found_in_any_order_and_case() {
        let s = SchemaDef {
            id: "urn:x".into(),
            name: "X".into(),
            description: "".into(),
            attrs: ["a", "b", "c"].iter().map(|n| AttrDef::new(*n, AttrType::String, "")).collect(),
        };
        let mut hint = 0;
        let names: Vec<_> =
            ["A", "b", "a", "C", "zz", "c"].iter().map(|n| s.attr_after(n, &mut hint).map(|a| a.name.to_string())).collect();
        assert_eq!(names, [Some("a"), Some("b"), Some("a"), Some("c"), None, Some("c")].map(|n| n.map(str::to_string)));
    }

    #[test]
    fn resolves_case_insensitively_and_by_urn() {
        let t = user_type();
        assert_eq!(t.resolve(None, "USERNAME").map(|r| &*r.def.name), Some("userName"));
        let r = t.resolve(Some(URN_ENTERPRISE), "Department").map(|r| (r.ext, &*r.def.name));
        assert_eq!(r, Some((Some(URN_ENTERPRISE), "department")));
        assert!(t.resolve(None, "nosuch").is_none());
    }

    #[test]
    fn schema_json_lists_every_attribute() {
        let j = user_schema().to_json("http://x/scim/v2");
        let names: Vec<&str> = j["attributes"].as_array().unwrap().iter().filter_map(|a| a["name"].as_str()).collect();
        for n in ["userName", "name", "emails", "x509Certificates", "password", "groups"] {
            assert!(names.contains(&n), "{n}");
        }
    }
}
