//! A tenant's resource types as one request serves them: User and Group with the built-in
//! extensions and the tenant's own ([`crate::extensions`]), and the resource types it declared
//! ([`crate::resource_types`]), read from its declarations record.

use crate::extensions::{Declaration, from_record};
use crate::kind::Kind;
use crate::resource_types::TypeDeclaration;
use crate::schema::{ResourceType, SchemaDef};
use serde_json::{Map, Value};
use std::sync::Arc;

/// What [`TenantSchemas::of`] answers for a slot the tenant does not hold.
fn unknown_type() -> &'static ResourceType {
    static T: std::sync::OnceLock<ResourceType> = std::sync::OnceLock::new();
    T.get_or_init(|| ResourceType {
        name: "Unknown".into(),
        endpoint: "/".into(),
        description: "".into(),
        schema: Arc::new(SchemaDef { id: "urn:scim-serverless:unknown".into(), name: "".into(), description: "".into(), attrs: vec![] }),
        extensions: vec![],
        required: vec![],
        hides_values: false,
    })
}

/// A tenant's resource types: the built-in ones plus its declared extensions.
#[derive(Debug)]
pub struct TenantSchemas {
    /// The tenant's declarations version (0: none, the built-in types).
    pub version: u64,
    /// The User resource type: the core schema, the built-in extensions and the tenant's own.
    pub user: ResourceType,
    /// The Group resource type, with the tenant's Group extensions.
    pub group: ResourceType,
    /// Every declaration the tenant has made, deleted ones included (their values stay hidden).
    pub declared: Vec<Declaration>,
    /// The resource types the tenant declared, each with the resource type it serves.
    pub types: Vec<(TypeDeclaration, ResourceType)>,
}

impl TenantSchemas {
    /// The built-in types: what a tenant without declarations is served.
    pub fn builtin() -> Arc<TenantSchemas> {
        static B: std::sync::OnceLock<Arc<TenantSchemas>> = std::sync::OnceLock::new();
        B.get_or_init(|| {
            Arc::new(TenantSchemas {
                version: 0,
                user: crate::schema::user_type().clone(),
                group: crate::schema::group_type().clone(),
                declared: Vec::new(),
                types: Vec::new(),
            })
        })
        .clone()
    }

    /// The types of a tenant with these declarations (deleted ones are not served) and these
    /// declared resource types.
    pub fn build(version: u64, declared: Vec<Declaration>, types: Vec<TypeDeclaration>) -> TenantSchemas {
        let mut user = crate::schema::user_type().clone();
        let mut group = crate::schema::group_type().clone();
        for d in &declared {
            // an extension extends User or Group (`extensions::parse`); a declared type carries
            // its extensions in its own declaration
            let rt = match d.extends {
                Kind::User => &mut user,
                Kind::Group | Kind::Declared(_) => &mut group,
            };
            rt.hides_values |= d.deleted || !d.retired.is_empty();
            if !d.deleted {
                rt.extensions.push(d.schema.clone());
            }
        }
        let types = types
            .into_iter()
            .map(|t| {
                let rt = t.resource_type();
                (t, rt)
            })
            .collect();
        TenantSchemas { version, user, group, declared, types }
    }

    /// The types of a tenant from its stored declarations record.
    pub fn from_record(version: u64, record: &Value) -> TenantSchemas {
        TenantSchemas::build(version, from_record(record), crate::resource_types::from_record(record).0)
    }

    /// The resource type of a kind. A declared kind is only ever made from these types (the
    /// path resolved against them); one they do not hold is served as a type with no
    /// attributes of its own, so nothing could be written through it.
    pub fn of(&self, kind: Kind) -> &ResourceType {
        match kind {
            Kind::User => &self.user,
            Kind::Group => &self.group,
            Kind::Declared(slot) => self.types.iter().find(|(t, _)| t.slot == slot).map(|(_, rt)| rt).unwrap_or_else(|| unknown_type()),
        }
    }

    /// Every kind the tenant is served, built-in first.
    pub fn kinds(&self) -> impl Iterator<Item = Kind> + '_ {
        [Kind::User, Kind::Group].into_iter().chain(self.types.iter().map(|(t, _)| t.kind()))
    }

    /// The declared kind whose endpoint is `/{segment}` (ASCII case ignored, as for `/users`).
    pub fn declared_at(&self, segment: &str) -> Option<Kind> {
        self.types.iter().find(|(t, _)| t.segment().eq_ignore_ascii_case(segment)).map(|(t, _)| t.kind())
    }

    /// Copies into `new` what `old` holds that the tenant's declarations hide — retired
    /// attributes and deleted extensions — so no replace or PATCH drops data it cannot see.
    pub fn carry_hidden(&self, kind: Kind, old: &Map<String, Value>, new: &mut Map<String, Value>) {
        for d in self.declared.iter().filter(|d| d.extends == kind) {
            let Some(Value::Object(before)) = old.get(&*d.schema.id) else { continue };
            if d.deleted {
                new.insert(d.schema.id.to_string(), Value::Object(before.clone()));
                continue;
            }
            for r in &d.retired {
                if let Some(v) = before.get(&*r.name) {
                    let slot = new.entry(d.schema.id.to_string()).or_insert_with(|| Value::Object(Map::new()));
                    if let Some(o) = slot.as_object_mut() {
                        o.insert(r.name.to_string(), v.clone());
                    }
                }
            }
        }
    }
}
