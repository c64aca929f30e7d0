//! `scim-admin`: tenants and API keys, against the embedded store or DynamoDB.

use clap::{Parser, Subcommand};
use scim_core::migrate;
use scim_core::oauth;
use scim_core::roles;
use scim_core::store::Table;
use scim_core::store::dynamo::{DynamoConfig, DynamoTable};
use scim_core::store::embedded::EmbeddedTable;
use scim_core::store::layout::{LAYOUT_VERSION, Layout};
use scim_core::tenancy;
use scim_functions::cli::{self, Failure};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Administers scim-serverless tenants and API keys.
///
/// Works on the local embedded store (--data-dir, the default; stop scim-local first, one
/// process owns a data directory) or on a DynamoDB table (--table with --region for AWS, using
/// the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN environment; add
/// --dynamodb-endpoint for moto or DynamoDB Local).
///
/// A key is printed once, when it is created or rotated: store it in the IdP's Secret Token
/// field right away. Only its SHA-256 is kept.
///
/// Examples:
///   scim-admin --table scim-serverless --region eu-west-1 tenant create acme --name "Acme Inc"
///   scim-admin --table scim-serverless --region eu-west-1 key create --tenant acme --role provisioner
///   scim-admin --table scim-serverless --region eu-west-1 key rotate acme.3f9c0d2a5b7e4c11
///   scim-admin --table scim-serverless --region eu-west-1 key revoke acme.3f9c0d2a5b7e4c11
#[derive(Parser, Debug)]
#[command(name = "scim-admin", version, verbatim_doc_comment)]
struct Args {
    /// Embedded store directory (when no --table is given); default $XDG_DATA_HOME/scim-local or
    /// ~/.local/share/scim-local, the same place scim-local uses.
    #[arg(long, env = "SCIM_LOCAL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Create the embedded store if the data directory holds none (scim-local makes it on its
    /// first start; without this, a mistyped directory is an error, not a second, empty store).
    #[arg(long)]
    create_store: bool,
    /// DynamoDB table; selects DynamoDB instead of the embedded store.
    #[arg(long, env = "SCIM_TABLE")]
    table: Option<String>,
    /// AWS region of the table: required with --table, never taken from the environment or a
    /// default (a tenant made in the wrong region's table gets its IdP 401s).
    #[arg(long)]
    region: Option<String>,
    /// A local DynamoDB endpoint (moto, DynamoDB Local).
    #[arg(long, env = "SCIM_DYNAMODB_ENDPOINT")]
    dynamodb_endpoint: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Tenants: one per customer organisation.
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// API keys: one tenant and one role each.
    #[command(subcommand)]
    Key(KeyCmd),
    /// OAuth 2.0 clients of a tenant (client credentials: what Entra's gallery asks for). Each
    /// has a role and up to 5 active secrets, each with its own expiry (default 2 years, at
    /// most 3); the IdP exchanges a secret for an access token at the token endpoint.
    #[command(subcommand, name = "oauth-client")]
    OauthClient(OauthClientCmd),
    /// Workload identity federation: an OAuth client that authenticates with assertions an
    /// identity provider signs (Entra's provisioning service) instead of a secret.
    #[command(subcommand, name = "oauth-federation")]
    OauthFederation(OauthFederationCmd),
    /// The key that signs access tokens on the embedded store (scim-local's). A deployment's
    /// key is in KMS: infra/README.md says how to rotate it.
    #[command(subcommand, name = "oauth-key")]
    OauthKey(OauthKeyCmd),
    /// Custom roles of a tenant, made of permissions: scim:read, scim:write, roles:edit,
    /// mappings:manage, scim:configure. Built-in: admin (all), provisioner (scim:read,
    /// scim:write, roles:edit), reader (scim:read).
    #[command(subcommand)]
    Role(RoleCmd),
    /// A tenant's schema extensions (RFC 7643 §7 declarations of custom attributes for Users or
    /// Groups): what `PUT /Settings/Schemas/{urn}` does, from a file.
    #[command(subcommand)]
    Schema(SchemaCmd),
    /// A tenant's own resource types (RFC 7643 §6, with their §7 schemas in
    /// "schemaDefinitions"): what `PUT /Settings/ResourceTypes/{name}` does, from a file. A
    /// declared type is served at its endpoint like /Users. Example: docs/agents.md.
    #[command(subcommand, name = "resource-type")]
    ResourceType(ResourceTypeCmd),
    /// Setup links for a tenant's IT admin: a page that shows the Tenant URL, makes provisioner
    /// tokens, runs the IdP's Test Connection and lists provisioning activity, failures first.
    #[command(subcommand)]
    Portal(PortalCmd),
    /// Bring the table to this version's layout: run once after deploying a version whose
    /// layout changed (until then requests get 503). Idempotent and resumable; prints progress
    /// and the names it could not merge (two users whose userNames differ only in case or
    /// Unicode form), which you resolve by renaming or deleting one.
    Migrate,
    /// A tenant's audit log for one day (every attempt at a create, replace, patch or delete,
    /// refused ones included: key id, route, method, path, resource id, status, time; kept 90
    /// days).
    Audit {
        #[arg(long)]
        tenant: String,
        /// YYYY-MM-DD (UTC); default today.
        #[arg(long)]
        day: Option<String>,
    },
    /// Repair a damaged embedded store log (scim-local refuses to start on one, naming the byte
    /// where the damage is). Without --yes it only says what a repair would keep and drop; with
    /// --yes it keeps every whole write, drops the rest, and keeps the log as it was as
    /// table.log.damaged-<unix time> beside it. Stop scim-local first.
    Repair {
        /// Do it (after reading what it drops).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand, Debug)]
enum TenantCmd {
    /// Create a tenant (letters, digits, '-' and '_').
    Create {
        id: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// List tenants.
    List,
    /// Show one tenant and its keys.
    Show { id: String },
    /// Set the tenant's role policy (Portkey-style): allowed `roles` values, the default for
    /// users sent without one (and for values outside the list), and a group-name rule granting
    /// workspace roles. Effective roles appear on users in the access extension.
    Roles {
        id: String,
        /// e.g. member
        #[arg(long)]
        default_role: Option<String>,
        /// e.g. member,admin,owner
        #[arg(long)]
        user_roles: Option<String>,
        /// e.g. ws-{workspace}-role-{role}
        #[arg(long)]
        group_rule: Option<String>,
        /// e.g. admin,manager,member (strongest first)
        #[arg(long)]
        group_roles: Option<String>,
        /// Remove the policy.
        #[arg(long)]
        clear: bool,
    },
    /// Change a tenant's settings.
    Update {
        id: String,
        /// active, or suspended (every key of the tenant gets 403).
        #[arg(long)]
        status: Option<String>,
        /// Comma-separated CIDRs the IdP calls from; "" allows any address.
        #[arg(long)]
        ip_allowlist: Option<String>,
        /// Requests per second for the whole tenant (0 = no limit); over it: 429 Retry-After.
        #[arg(long)]
        rate_limit: Option<u32>,
        /// What deactivating a user (active: false) does: remove-memberships (default: the user
        /// leaves every group) or keep-memberships (groups stay; reactivation restores access).
        #[arg(long)]
        deactivation: Option<String>,
        /// none (default, RFC 7643: any number of users may hold one externalId), unique (409
        /// for a second holder), or relink (a POST /Users whose externalId exactly one user
        /// holds updates and reactivates that user: Okta's re-assignment after a userName change).
        #[arg(long)]
        external_id_policy: Option<String>,
        /// ignore (default: extension URNs the tenant has not declared are dropped, and the
        /// audit entry names them) or reject (400 naming the URN).
        #[arg(long)]
        unknown_extensions: Option<String>,
        /// The longest a new key may last, in days (1 to 3650; 0 removes the limit). With a
        /// limit, no key that never expires can be made (CLI, rotation or portal).
        #[arg(long)]
        max_key_lifetime_days: Option<u32>,
        /// How long new OAuth access tokens last, in minutes (60 to 360; 0: the default, 60).
        #[arg(long)]
        token_lifetime_minutes: Option<u32>,
    },
}

#[derive(Subcommand, Debug)]
enum RoleCmd {
    /// Create or replace a custom role.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// Comma-separated permission names.
        #[arg(long)]
        permissions: String,
    },
    /// List the tenant's roles (built-in and custom).
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Delete a custom role (its keys then grant nothing).
    Delete {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand, Debug)]
enum ResourceTypeCmd {
    /// Declare or redeclare a resource type from a JSON file (an RFC 7643 §6 ResourceType with
    /// "schemaDefinitions"). A type holding resources may gain attributes and optional
    /// extensions; a change they might not satisfy is refused while they exist.
    Put {
        #[arg(long)]
        tenant: String,
        /// The type's name (its "name"), e.g. Agent.
        #[arg(long)]
        name: String,
        /// The declaration, a JSON file ("-" reads standard input).
        #[arg(long)]
        file: PathBuf,
    },
    /// Show one declaration.
    Get {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
    },
    /// List the tenant's resource types.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Stop serving a resource type; refused while it holds resources.
    Delete {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand, Debug)]
enum SchemaCmd {
    /// Declare or redeclare an extension from a JSON file: {"attributes": [{"name": "costCenter",
    /// "type": "string"}, …]} ("extends": "User" or "Group" when the URN does not end in one).
    /// Attributes left out are retired (their values stay, hidden); a change stored values might
    /// not satisfy is refused while values exist.
    Put {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        urn: String,
        /// The declaration, a JSON file ("-" reads standard input).
        #[arg(long)]
        file: PathBuf,
    },
    /// Show one declaration.
    Get {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        urn: String,
    },
    /// List the tenant's declarations.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Stop serving an extension (its values stay stored, hidden).
    Delete {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        urn: String,
    },
}

#[derive(Subcommand, Debug)]
enum PortalCmd {
    /// Make a setup link and print it. It is a credential until it expires: send it to the
    /// tenant's IT admin privately (the secret part, after '#', never reaches a server log).
    Link {
        #[arg(long)]
        tenant: String,
        /// The deployment's Tenant URL (the stack output TenantUrl, ending in /scim/v2).
        #[arg(long, env = "SCIM_TENANT_URL")]
        tenant_url: String,
        /// How long the link works, 1 to 720 hours.
        #[arg(long, default_value_t = scim_core::setup_link::DEFAULT_LINK_HOURS)]
        hours: i64,
    },
    /// Revoke every setup link of a tenant made so far (tokens made with them keep working;
    /// revoke those with `key revoke`).
    Revoke {
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Subcommand, Debug)]
enum OauthClientCmd {
    /// Create a client and its first secret; prints CLIENT_ID= and CLIENT_SECRET= once.
    Create {
        #[arg(long)]
        tenant: String,
        /// The role its tokens carry: admin, provisioner, reader or a custom role.
        #[arg(long, default_value = "provisioner")]
        role: String,
        /// The secret stops working after this many days (default 730, at most 1095).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// List a tenant's clients and their secrets (never the secrets themselves).
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Add a secret to a client (at most 5 active): rotate without downtime, then revoke the
    /// old one.
    AddSecret {
        client_id: String,
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Revoke one secret: no new token from it at once; its tokens stop with the tenant's next
    /// record read (in AWS, within the authorizer cache TTL).
    RevokeSecret { client_id: String, secret_id: String },
    /// Revoke a client: none of its secrets works, and its tokens stop as for a secret.
    Revoke { client_id: String },
}

#[derive(Subcommand, Debug)]
enum OauthFederationCmd {
    /// Make a federated client; prints CLIENT_ID= (there is no secret). Entra shows the
    /// issuer, JWKS URL, subject and audience on its Connectivity page.
    Add {
        #[arg(long)]
        tenant: String,
        /// The assertions' `iss` (Entra: https://login.microsoftonline.com/<tenant id>/v2.0).
        #[arg(long)]
        issuer: String,
        /// The assertions' `sub`.
        #[arg(long)]
        subject: String,
        /// An accepted `aud` (repeat for several; api://<id>, <id> and api://<id>/.default match).
        #[arg(long, required = true)]
        audience: Vec<String>,
        /// The issuer's signing keys (https://).
        #[arg(long)]
        jwks_url: String,
        /// The role its tokens carry.
        #[arg(long, default_value = "provisioner")]
        role: String,
    },
}

#[derive(Subcommand, Debug)]
enum OauthKeyCmd {
    /// A new key signs from now on; the old one still verifies until its tokens expire (6 h).
    Rotate,
}

#[derive(Subcommand, Debug)]
enum KeyCmd {
    /// Create a key and print it once.
    Create {
        #[arg(long)]
        tenant: String,
        /// admin or provisioner (SCIM read and write), reader (SCIM read).
        #[arg(long, default_value = "provisioner")]
        role: String,
        /// The key stops working after this many days.
        #[arg(long)]
        expires_in_days: Option<i64>,
    },
    /// List a tenant's keys (never their secrets).
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Revoke a key by id (`<tenant>.<16 hex>`, between "scim_" and the secret; the 16 hex of a
    /// key made before layout 5 work too).
    Revoke { key_id: String },
    /// Make a new key with the same tenant and role; both work until you revoke the old one.
    /// Only a working key can be rotated (a revoked or expired one cannot: create a new key).
    /// The new key lasts as long as the old one was made to last, counted from now, unless told.
    Rotate {
        key_id: String,
        /// The new key stops working after this many days.
        #[arg(long, conflicts_with = "never_expires")]
        expires_in_days: Option<i64>,
        /// The new key never expires (refused when the tenant has a maximum lifetime).
        #[arg(long)]
        never_expires: bool,
    },
}

fn print(json_out: bool, v: &impl serde::Serialize, text: String) {
    if json_out {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        println!("{text}");
    }
}

/// What every command answers with: a message for the operator on failure.
type Outcome = Result<(), Box<dyn std::error::Error>>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => cli::fail("scim-admin", e.as_ref()),
    }
}

async fn run(args: Args) -> Outcome {
    if let Command::Repair { yes } = args.command {
        return repair(&embedded_dir(&args)?, yes);
    }
    let layout = Layout::new(open_table(&args).await?);
    let j = args.json;
    if let Command::Migrate = args.command {
        return migrate(&layout, j).await;
    }
    prepare(&layout, args.table.is_none()).await?;
    match args.command {
        Command::Migrate | Command::Repair { .. } => Ok(()),
        Command::Tenant(cmd) => tenant(&layout, j, cmd).await,
        Command::Portal(cmd) => portal(&layout, j, cmd).await,
        Command::Role(cmd) => role(&layout, j, cmd).await,
        Command::Schema(cmd) => schema(&layout, j, cmd).await,
        Command::ResourceType(cmd) => resource_type(&layout, j, cmd).await,
        Command::Audit { tenant, day } => audit(&layout, j, tenant, day).await,
        Command::Key(cmd) => key(&layout, j, cmd).await,
        Command::OauthClient(cmd) => oauth_client(&layout, j, cmd).await,
        Command::OauthFederation(OauthFederationCmd::Add { tenant, issuer, subject, audience, jwks_url, role }) => {
            let fed = scim_core::federation::Federation { issuer, subject, audiences: audience, jwks_url };
            let id = oauth::create_federated_client(&layout, &tenant, &role, fed).await?;
            print(
                j,
                &json!({"client_id": id}),
                format!("CLIENT_ID={id}\n(federated: no secret; paste it into Entra with the token endpoint)"),
            );
            Ok(())
        }
        Command::OauthKey(OauthKeyCmd::Rotate) if args.table.is_some() => Err(Failure(
            "a deployment signs its tokens with a KMS key, not a key in the table: rotate it as infra/README.md says \
             (\"Rotating the token signing key\")"
                .into(),
        )
        .into()),
        Command::OauthKey(OauthKeyCmd::Rotate) => {
            let kid = oauth::rotate_signing_key(&layout).await?;
            print(j, &json!({"kid": kid}), format!("signing key {kid} signs from now on; the previous one verifies for 6 more hours"));
            Ok(())
        }
    }
}

/// The embedded store's directory, said on stderr (so a store used by mistake is seen).
fn embedded_dir(args: &Args) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let dir = cli::data_dir(args.data_dir.clone());
    eprintln!("scim-admin: embedded store in {} ({})", dir.path.display(), dir.why);
    if !cli::holds_store(&dir.path) && !args.create_store {
        return Err(Failure(format!(
            "there is no store in {}: start scim-local once (it makes one), pass --data-dir for another directory, or --create-store to make an empty one here",
            dir.path.display()
        ))
        .into());
    }
    Ok(dir.path)
}

/// The embedded store under `--data-dir`, or the DynamoDB table `--table` in `--region` — only
/// when it has this layout's key schema (an operator must not write into some other table).
async fn open_table(args: &Args) -> Result<Arc<dyn Table>, Box<dyn std::error::Error>> {
    let Some(t) = &args.table else {
        return Ok(Arc::new(EmbeddedTable::open(&embedded_dir(args)?)?));
    };
    let region =
        args.region.clone().ok_or("--region is required with --table: say which region's table this is (e.g. --region eu-west-1)")?;
    // an operator's tool, not a request path: it waits longer for a busy table
    let dynamo = DynamoTable::connect(&DynamoConfig {
        attempt_timeout: std::time::Duration::from_secs(20),
        operation_timeout: std::time::Duration::from_secs(120),
        ..DynamoConfig::new(t.clone(), region.clone(), args.dynamodb_endpoint.clone())
    })?;
    let shape = dynamo.has_layout_shape().await.map_err(|e| format!("cannot read table '{t}' in {region}: {e}"))?;
    if !shape {
        return Err(format!(
            "table '{t}' in {region} is not a scim-serverless table (key pk/sk and index gsi1 expected): refusing to write to it"
        )
        .into());
    }
    Ok(Arc::new(dynamo))
}

/// `scim-admin repair`: says what a repair keeps and drops, and with `yes` does it.
fn repair(dir: &std::path::Path, yes: bool) -> Outcome {
    use scim_core::store::{embedded, wal::Stretch};
    let survey = embedded::survey(dir)?;
    if survey.is_whole() {
        println!("{} reads whole: nothing to repair", survey.path.display());
        return Ok(());
    }
    let (mut frames, mut changes) = (0, 0);
    for s in &survey.stretches {
        match s {
            Stretch::Frame { changes: n, .. } => (frames, changes) = (frames + 1, changes + n),
            Stretch::Recovered { offset, len, changes: n } => {
                (frames, changes) = (frames + 1, changes + n);
                println!(
                    "bytes {offset}..{}: a write whose length field is damaged; its content checks out: kept ({n} changes)",
                    offset + len
                );
            }
            Stretch::Damaged { offset, len } => {
                println!("bytes {offset}..{}: damaged ({len} bytes, with whole writes after them): dropped", offset + len)
            }
            Stretch::Torn { offset, len } => println!("bytes {offset}..{}: an interrupted last write ({len} bytes): dropped", offset + len),
        }
    }
    println!("{frames} whole writes ({changes} changes) are kept; {} bytes are dropped", survey.dropped_bytes());
    if !yes {
        println!("nothing was changed: run again with --yes to repair (the log as it is now is kept beside it)");
        return Ok(());
    }
    let kept = embedded::repair(dir, &survey)?;
    println!("repaired {}; the log as it was is kept as {}", survey.path.display(), kept.display());
    Ok(())
}

/// Rows of text, or `empty` when there are none.
fn rows(lines: Vec<String>, empty: String) -> String {
    if lines.is_empty() { empty } else { lines.join("\n") }
}

async fn tenant(layout: &Layout, j: bool, cmd: TenantCmd) -> Outcome {
    match cmd {
        TenantCmd::Create { id, name } => {
            let made = tenancy::create_tenant(layout, &id, name.as_deref().unwrap_or(&id)).await?;
            if !made {
                return Err(format!("tenant '{id}' already exists").into());
            }
            print(j, &json!({"tenant": id, "created": true}), format!("tenant '{id}' created; next: scim-admin key create --tenant {id}"));
        }
        TenantCmd::List => {
            let ts = tenancy::list_tenants(layout).await?;
            let text = ts.iter().map(|t| format!("{}\t{}\t{}", t.id, t.name, t.created));
            let text = rows(text.collect(), "no tenants".into());
            print(j, &ts, text);
        }
        TenantCmd::Show { id } => {
            let t = tenancy::get_tenant(layout, &id).await?.ok_or(format!("no tenant '{id}'"))?;
            let keys = tenancy::list_keys(layout, &id).await?;
            let text = format!("{}\nkeys: {}", serde_json::to_string_pretty(&t).unwrap_or_default(), keys.len());
            print(j, &json!({"tenant": t, "keys": keys}), text);
        }
        TenantCmd::Roles { id, default_role, user_roles, group_rule, group_roles, clear } => {
            let split = |s: Option<String>| {
                s.map(|s| s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect::<Vec<_>>()).unwrap_or_default()
            };
            let policy = match clear {
                true => None,
                false => Some(roles::RolesPolicy {
                    default_role: default_role.ok_or("--default-role is required (or --clear)")?,
                    user_roles: split(user_roles),
                    group_rule,
                    group_roles: split(group_roles),
                }),
            };
            let rec = tenancy::set_roles_policy(layout, &id, policy.as_ref()).await?;
            print(j, &rec, format!("tenant '{id}' role policy: {}", serde_json::to_string(&rec.roles_policy).unwrap_or_default()));
        }
        TenantCmd::Update {
            id,
            status,
            ip_allowlist,
            rate_limit,
            deactivation,
            external_id_policy,
            unknown_extensions,
            max_key_lifetime_days,
            token_lifetime_minutes,
        } => {
            let change = tenancy::TenantChange {
                max_key_lifetime_days: max_key_lifetime_days.map(|d| (d > 0).then_some(d)),
                token_lifetime_minutes: token_lifetime_minutes.map(|m| (m > 0).then_some(m)),
                status,
                ip_allowlist: ip_allowlist.map(|l| l.split(',').map(str::trim).filter(|c| !c.is_empty()).map(str::to_string).collect()),
                rate_limit,
                deactivation: parsed(
                    deactivation,
                    tenancy::Deactivation::parse,
                    "--deactivation is remove-memberships or keep-memberships",
                )?,
                external_id_policy: parsed(
                    external_id_policy,
                    tenancy::ExternalIdPolicy::parse,
                    "--external-id-policy is none, unique or relink",
                )?,
                unknown_extensions: parsed(
                    unknown_extensions,
                    tenancy::UnknownExtensions::parse,
                    "--unknown-extensions is ignore or reject",
                )?,
            };
            let rec = tenancy::update_tenant(layout, &id, &change).await?;
            print(j, &rec, format!("tenant '{id}' updated:\n{}", serde_json::to_string_pretty(&rec).unwrap_or_default()));
        }
    }
    Ok(())
}

/// An optional setting parsed by `parse`; a value it does not know is an error saying `expected`.
fn parsed<T>(value: Option<String>, parse: fn(&str) -> Option<T>, expected: &str) -> Result<Option<T>, String> {
    value.map(|v| parse(&v).ok_or(format!("{expected}, not '{v}'"))).transpose()
}

async fn portal(layout: &Layout, j: bool, cmd: PortalCmd) -> Outcome {
    match cmd {
        PortalCmd::Link { tenant, tenant_url, hours } => {
            if !(tenant_url.starts_with("https://") || tenant_url.starts_with("http://"))
                || !tenant_url.trim_end_matches('/').ends_with(scim_core::BASE_PATH)
            {
                return Err(format!("--tenant-url is the deployment's Tenant URL, https://…/scim/v2 (got '{tenant_url}')").into());
            }
            let (token, expires) = scim_core::setup_link::make_link(layout, &tenant, hours).await?;
            let url = scim_core::setup_link::link_url(&tenant_url, &token);
            let until = scim_core::time::format_unix_millis(expires * 1000).unwrap_or_default();
            print(j, &json!({"tenant": tenant, "url": url, "expires": until}), format!("{url}\n(valid until {until}; send it privately)"));
        }
        PortalCmd::Revoke { tenant } => {
            tenancy::revoke_portal_links(layout, &tenant).await?;
            let text = format!("every setup link of tenant '{tenant}' made so far stops working");
            print(j, &json!({"tenant": tenant, "revoked": true}), text);
        }
    }
    Ok(())
}

async fn role(layout: &Layout, j: bool, cmd: RoleCmd) -> Outcome {
    match cmd {
        RoleCmd::Create { tenant, name, permissions } => {
            let mut perms = Vec::new();
            for p in permissions.split(',').filter(|p| !p.trim().is_empty()) {
                perms.push(roles::Permission::parse(p).ok_or(format!("unknown permission '{p}'"))?);
            }
            let roles = tenancy::set_custom_role(layout, &tenant, &name, Some(&perms)).await?;
            print(j, &roles, format!("role '{name}' saved for tenant '{tenant}'"));
        }
        RoleCmd::Delete { tenant, name } => {
            let roles = tenancy::set_custom_role(layout, &tenant, &name, None).await?;
            print(j, &roles, format!("role '{name}' deleted from tenant '{tenant}'"));
        }
        RoleCmd::List { tenant } => {
            let t = tenancy::get_tenant(layout, &tenant).await?.ok_or(format!("no tenant '{tenant}'"))?;
            let mut all = serde_json::Map::new();
            for r in ["admin", "provisioner", "reader"] {
                let perms = roles::role_permissions(r).unwrap_or(&[]).iter().map(|p| p.as_str()).collect::<Vec<_>>();
                all.insert(r.to_string(), json!(perms));
            }
            all.extend(t.custom_roles.iter().map(|(k, v)| (k.clone(), json!(v))));
            let names =
                |v: &Value| v.as_array().map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(",")).unwrap_or_default();
            let text = all.iter().map(|(k, v)| format!("{k}\t{}", names(v))).collect::<Vec<_>>().join("\n");
            print(j, &Value::Object(all), text);
        }
    }
    Ok(())
}

async fn audit(layout: &Layout, j: bool, tenant: String, day: Option<String>) -> Outcome {
    let day = day.unwrap_or_else(|| scim_core::time::now().get(..10).unwrap_or_default().to_string());
    let entries = layout.audit_entries(&tenant, &day).await?;
    let text = entries.iter().map(|e| {
        let field = |k: &str| e[k].as_str().unwrap_or("").to_string();
        let route = e["route"].as_str().unwrap_or("-");
        format!("{}\t{}\t{} {}\t{}\t{route}", field("time"), field("key_id"), field("method"), field("path"), e["status"])
    });
    let text = rows(text.collect(), format!("no audit entries for {tenant} on {day}"));
    print(j, &Value::Array(entries), text);
    Ok(())
}

async fn key(layout: &Layout, j: bool, cmd: KeyCmd) -> Outcome {
    match cmd {
        KeyCmd::Create { tenant, role, expires_in_days } => {
            let expires = expires_in_days.map(days_from_now).transpose()?;
            let k = tenancy::create_key(layout, &tenant, &role, expires).await?;
            print(
                j,
                &json!({"key_id": k.key_id, "token": k.token, "tenant": tenant, "role": role}),
                format!("{}\n(key id {}; shown once — paste it into the IdP's Secret Token now)", k.token, k.key_id),
            );
        }
        KeyCmd::List { tenant } => {
            let keys = tenancy::list_keys(layout, &tenant).await?;
            let now = scim_core::time::unix_now();
            let text = keys.iter().map(|k| {
                let field = |f: &str| k[f].as_str().unwrap_or("").to_string();
                let expires = k["expires_at"].as_i64();
                let state = match (k["revoked"] == json!(true), expires.is_some_and(|t| t <= now)) {
                    (true, _) => "revoked",
                    (false, true) => "expired",
                    (false, false) => "active",
                };
                let used = k["last_used_at"].as_str().map(|t| format!("last used {t}")).unwrap_or_else(|| "never used".into());
                let until = match expires.and_then(|t| scim_core::time::format_unix_millis(t * 1000)) {
                    Some(t) => format!("expires {t}"),
                    None => "never expires".into(),
                };
                format!("{}\t{}\t{state}\tcreated {}\t{used}\t{until}", field("key_id"), field("role"), field("created"))
            });
            let text = rows(text.collect(), "no keys".into());
            print(j, &Value::Array(keys), text);
        }
        KeyCmd::Revoke { key_id } => {
            let rec = tenancy::revoke_key(layout, &key_id).await?;
            print(j, &rec, format!("key {key_id} revoked (in AWS it stops working when the authorizer cache TTL expires)"));
        }
        KeyCmd::Rotate { key_id, expires_in_days, never_expires } => {
            let expires = match (expires_in_days, never_expires) {
                (_, true) => Some(None),
                (Some(d), false) => Some(Some(days_from_now(d)?)),
                (None, false) => None,
            };
            let k = tenancy::rotate_key(layout, &key_id, expires).await?;
            print(
                j,
                &json!({"key_id": k.key_id, "token": k.token, "replaces": key_id}),
                format!("{}\n(new key id {}; update the IdP, then: scim-admin key revoke {key_id})", k.token, k.key_id),
            );
        }
    }
    Ok(())
}

fn print_secret(j: bool, n: &oauth::NewSecret, note: &str) {
    let until = scim_core::time::format_unix_millis(n.expires_at * 1000).unwrap_or_default();
    print(
        j,
        &json!({"client_id": n.client_id, "client_secret": n.secret, "secret_id": n.secret_id, "expires_at": n.expires_at}),
        format!("CLIENT_ID={}\nCLIENT_SECRET={}\n(secret id {}, expires {until}; shown once — {note})", n.client_id, n.secret, n.secret_id),
    );
}

async fn oauth_client(layout: &Layout, j: bool, cmd: OauthClientCmd) -> Outcome {
    match cmd {
        OauthClientCmd::Create { tenant, role, expires_in_days } => {
            let n = oauth::create_client(layout, &tenant, &role, expires_in_days).await?;
            print_secret(j, &n, "paste both into the IdP with the token endpoint");
        }
        OauthClientCmd::List { tenant } => {
            let clients = oauth::list_clients(layout, &tenant).await?;
            let now = scim_core::time::unix_now();
            let mut lines = Vec::new();
            for c in &clients {
                let state = if c["revoked_at"].is_null() { "active" } else { "revoked" };
                lines.push(format!(
                    "{}\t{}\t{state}\tcreated {}",
                    c["client_id"].as_str().unwrap_or(""),
                    c["role"].as_str().unwrap_or(""),
                    c["created"].as_str().unwrap_or("")
                ));
                for s in c["secrets"].as_array().into_iter().flatten() {
                    let exp = s["expires_at"].as_i64().unwrap_or(0);
                    let state = match (s["revoked_at"].is_null(), exp > now) {
                        (false, _) => "revoked",
                        (true, false) => "expired",
                        (true, true) => "active",
                    };
                    let until = scim_core::time::format_unix_millis(exp * 1000).unwrap_or_default();
                    lines.push(format!("  secret {}\t{state}\texpires {until}", s["id"].as_str().unwrap_or("")));
                }
            }
            print(j, &Value::Array(clients), rows(lines, "no OAuth clients".into()));
        }
        OauthClientCmd::AddSecret { client_id, expires_in_days } => {
            let n = oauth::add_secret(layout, &client_id, expires_in_days).await?;
            print_secret(j, &n, "update the IdP, then revoke the old secret");
        }
        OauthClientCmd::RevokeSecret { client_id, secret_id } => {
            let rec = oauth::revoke(layout, &client_id, Some(&secret_id)).await?;
            print(j, &rec, format!("secret {secret_id} of client {client_id} revoked"));
        }
        OauthClientCmd::Revoke { client_id } => {
            let rec = oauth::revoke(layout, &client_id, None).await?;
            print(j, &rec, format!("OAuth client {client_id} revoked"));
        }
    }
    Ok(())
}

/// Unix seconds `days` from now, for a key's expiry (1 to 3650 days).
fn days_from_now(days: i64) -> Result<i64, Failure> {
    let max = i64::from(tenancy::MAX_KEY_DAYS);
    if !(1..=max).contains(&days) {
        return Err(Failure(format!("--expires-in-days is 1 to {max}, not {days}")));
    }
    Ok(scim_core::time::unix_now() + days * 86_400)
}

/// Every command but `migrate` runs on a table at this version's layout: the embedded store is
/// upgraded in place (it has one owner, this process); an empty DynamoDB table is initialised
/// (the cursor seal and the layout marker); a table at an older layout is refused until
/// `migrate` has run, so no command writes in the old places.
async fn prepare(layout: &Layout, embedded: bool) -> Outcome {
    let version = layout.layout_version().await?;
    if version == Some(LAYOUT_VERSION) {
        return Ok(());
    }
    let fresh = version.is_none() && layout.tenant_ids(1).await?.is_empty();
    if embedded || fresh {
        let report = migrate::upgrade(layout, &mut |l| eprintln!("scim-admin: {l}")).await?;
        print_collisions(&report);
        return Ok(());
    }
    Err(format!(
        "this table is at layout {} and this scim-admin writes layout {LAYOUT_VERSION}: run `scim-admin --table … --region … migrate` first",
        version.map(|v| v.to_string()).unwrap_or_else(|| "1".into())
    )
    .into())
}

async fn migrate(layout: &Layout, json_out: bool) -> Outcome {
    let r = migrate::upgrade(layout, &mut |l| eprintln!("scim-admin: {l}")).await?;
    print_collisions(&r);
    let from = r.from.map(|v| v.to_string()).unwrap_or_else(|| if r.initialised { "none (empty table)".into() } else { "1".into() });
    let v = json!({"from": r.from, "to": r.to, "initialised": r.initialised, "tenants": r.tenants,
        "names_rekeyed": r.names_rekeyed, "config_moved": r.config_moved, "external_ids_indexed": r.external_ids_indexed, "inactive_counted": r.inactive_counted,
        "keys_renamed": r.keys_renamed, "clients_renamed": r.clients_renamed, "collisions": r.collisions.len()});
    print(
        json_out,
        &v,
        format!(
            "layout {from} → {}: {} tenants, {} names re-keyed, {} configuration items moved, {} externalIds indexed, {} inactive users counted, {} keys and {} OAuth clients renamed after their tenant (old ids still work), {} collisions",
            r.to,
            r.tenants,
            r.names_rekeyed,
            r.config_moved,
            r.external_ids_indexed,
            r.inactive_counted,
            r.keys_renamed,
            r.clients_renamed,
            r.collisions.len()
        ),
    );
    Ok(())
}

fn print_collisions(r: &migrate::Report) {
    for c in &r.collisions {
        eprintln!(
            "scim-admin: tenant '{}': {} '{}' of {} is one name with that of {} (case and Unicode form are ignored); rename or delete one",
            c.tenant, c.attribute, c.name, c.id, c.holder
        );
    }
}

/// A declaration file's JSON ("-": standard input).
fn json_file(file: &std::path::Path) -> Result<Value, Box<dyn std::error::Error>> {
    let text = if file.as_os_str() == "-" { std::io::read_to_string(std::io::stdin())? } else { std::fs::read_to_string(file)? };
    Ok(serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", file.display()))?)
}

async fn resource_type(layout: &Layout, json_out: bool, cmd: ResourceTypeCmd) -> Outcome {
    use scim_core::declarations;
    match cmd {
        ResourceTypeCmd::Put { tenant, name, file } => {
            let body = json_file(&file)?;
            tenancy::require_tenant(layout, &tenant).await?;
            let (decl, is_new) = declarations::put_type(layout, &tenant, &name, &body).await?;
            let endpoint = decl["endpoint"].as_str().unwrap_or_default();
            let what = if is_new { "declared" } else { "redeclared" };
            print(json_out, &decl, format!("resource type {name} {what} for tenant '{tenant}', served at {endpoint}"));
        }
        ResourceTypeCmd::Get { tenant, name } => {
            let decl = declarations::get_type(layout, &tenant, &name).await?;
            print(json_out, &decl, serde_json::to_string_pretty(&decl).unwrap_or_default());
        }
        ResourceTypeCmd::List { tenant } => {
            let list = declarations::list_types(layout, &tenant).await?;
            let line = |d: &Value| {
                let ext = d["schemaExtensions"].as_array().map(Vec::len).unwrap_or(0);
                format!(
                    "{}\t{}\t{}\t{ext} extensions",
                    d["name"].as_str().unwrap_or(""),
                    d["endpoint"].as_str().unwrap_or(""),
                    d["schema"].as_str().unwrap_or("")
                )
            };
            let text = list["Resources"].as_array().into_iter().flatten().map(line).collect::<Vec<_>>().join("\n");
            print(json_out, &list, if text.is_empty() { format!("tenant '{tenant}' declares no resource type") } else { text });
        }
        ResourceTypeCmd::Delete { tenant, name } => {
            declarations::delete_type(layout, &tenant, &name).await?;
            print(json_out, &json!({"deleted": name}), format!("resource type {name} no longer served for tenant '{tenant}'"));
        }
    }
    Ok(())
}

async fn schema(layout: &Layout, json_out: bool, cmd: SchemaCmd) -> Outcome {
    use scim_core::declarations;
    match cmd {
        SchemaCmd::Put { tenant, urn, file } => {
            let body = json_file(&file)?;
            tenancy::require_tenant(layout, &tenant).await?;
            let (decl, is_new) = declarations::put(layout, &tenant, &urn, &body).await?;
            let n = decl["attributes"].as_array().map(Vec::len).unwrap_or(0);
            print(
                json_out,
                &decl,
                format!("{urn} {} for tenant '{tenant}' ({n} attributes)", if is_new { "declared" } else { "redeclared" }),
            );
        }
        SchemaCmd::Get { tenant, urn } => {
            let decl = declarations::get(layout, &tenant, &urn).await?;
            print(json_out, &decl, serde_json::to_string_pretty(&decl).unwrap_or_default());
        }
        SchemaCmd::List { tenant } => {
            let list = declarations::list(layout, &tenant).await?;
            let text = list["Resources"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| {
                    format!(
                        "{}\t{}\t{} attributes",
                        d["id"].as_str().unwrap_or(""),
                        d["extends"].as_str().unwrap_or(""),
                        d["attributes"].as_array().map(Vec::len).unwrap_or(0)
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(json_out, &list, if text.is_empty() { format!("tenant '{tenant}' declares no extension") } else { text });
        }
        SchemaCmd::Delete { tenant, urn } => {
            declarations::delete(layout, &tenant, &urn).await?;
            print(json_out, &json!({"deleted": urn}), format!("{urn} no longer served for tenant '{tenant}' (its values stay stored)"));
        }
    }
    Ok(())
}
