//! The HTTP API's request and response bodies, shared by the server (which also derives the
//! OpenAPI schema from them, behind the `openapi` feature) and the client.
//!
//! Field names follow the Heroku Platform API v3 so that existing clients work unchanged; fields
//! wharf has no use for yet are still present with Heroku's neutral values (`null`, `false`, `[]`)
//! because clients read them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::release::ReleaseStatus;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// wharf's one region.
pub const REGION: &str = "local";
/// wharf's one stack.
pub const STACK: &str = "wharf-1";

/// Schemas of request fields whose rules a type alone doesn't state: the document admits exactly
/// what the server accepts. Each carries its field's description.
#[cfg(feature = "openapi")]
mod field_schema {
    use utoipa::openapi::schema::{Array, ArrayBuilder, Object, ObjectBuilder, SchemaType, Type};

    fn nullable_string(description: &str) -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .description(Some(description))
    }

    fn app_name(description: &str) -> Object {
        nullable_string(description)
            .pattern(Some(crate::name::AppName::pattern()))
            .build()
    }

    pub fn new_app_name() -> Object {
        app_name("The app's name; a name is generated when absent.")
    }

    pub fn app_rename() -> Object {
        app_name("A new name for the app.")
    }

    pub fn region() -> Object {
        nullable_string("Accepted for Heroku compatibility; wharf has one region, `local`.")
            .enum_values(Some([Some(super::REGION), None]))
            .build()
    }

    pub fn stack() -> Object {
        nullable_string(
            "The build stack, by name or id (`GET /stacks`): `wharf-1` (the host's `/usr`), or \
             a stack that is made (status `ready`).",
        )
        .max_length(Some(100))
        .build()
    }

    pub fn scope() -> Array {
        ArrayBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
            .description(Some("Only `global` (or nothing) is accepted."))
            .items(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["global"])),
            )
            .build()
    }

    /// A non-negative whole number as serde reads a `u64` (JSON Schema's `int64` format stops
    /// at `i64::MAX`).
    fn unsigned(types: &[Type], description: &str) -> Object {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter(types.iter().cloned()))
            .minimum(Some(0))
            .maximum(Some(u64::MAX))
            .description(Some(description))
            .build()
    }

    pub fn release_ident() -> Object {
        unsigned(
            &[Type::String, Type::Integer, Type::Null],
            "Roll back to this release (id, or version as `3`, `\"3\"` or `\"v3\"`): a new \
             release with its image and its config.",
        )
    }

    pub fn expires_in() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::Null)
            .description(Some(
                "Refused when set: wharf's tokens last until revoked (revoke one to end it).",
            ))
            .build()
    }
}

/// The media type Heroku clients send in `Accept`; any `version=3` variant is accepted.
pub const HEROKU_MEDIA_TYPE: &str = "application/vnd.heroku+json; version=3";

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorBody {
    /// Machine-readable error kind: `not_found`, `invalid_params`, `unauthorized`, `conflict`, …
    pub id: String,
    /// What went wrong and how to fix it.
    pub message: String,
}

/// A reference to another resource by id and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct NamedRef {
    pub id: String,
    pub name: String,
}

/// A reference to a resource by id only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct IdRef {
    pub id: String,
}

/// A reference to a user account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UserRef {
    pub id: String,
    pub email: String,
}

/// An API token, in the shape of Heroku's OAuth authorization. Its secret is shown once, in
/// the answer to the request that made it; wharf keeps only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Authorization {
    pub id: String,
    pub description: String,
    /// The secret: only when the token was just made.
    pub access_token: Option<AccessToken>,
    /// wharf's tokens can do everything their account can: `["global"]`.
    pub scope: Vec<String>,
    pub user: UserRef,
    pub created_at: String,
    pub updated_at: String,
}

/// A token's secret, as Heroku's OAuth authorization carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AccessToken {
    pub id: String,
    /// Send it as `Authorization: Bearer <token>`.
    pub token: String,
    /// Seconds until it expires: `null`, wharf's tokens last until revoked.
    pub expires_in: Option<u64>,
}

/// `POST /oauth/authorizations`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AuthorizationCreate {
    /// What the token is for (shown in lists), e.g. `CI deploys`.
    #[serde(default)]
    pub description: Option<String>,
    /// Only `global` (or nothing) is accepted.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = field_schema::scope))]
    pub scope: Option<Vec<String>>,
    /// Refused when set: wharf's tokens last until revoked.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = field_schema::expires_in))]
    pub expires_in: Option<u64>,
}

/// The app generation; wharf apps behave like Heroku's `cedar` generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Generation {
    pub id: String,
    pub name: String,
}

/// `GET /account`: the account the token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Account {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub allow_tracking: bool,
    pub beta: bool,
    pub federated: bool,
    pub verified: bool,
    pub two_factor_authentication: bool,
    pub last_login: Option<String>,
    pub suspended_at: Option<String>,
    pub delinquent_at: Option<String>,
    pub default_organization: Option<NamedRef>,
    pub default_team: Option<NamedRef>,
    pub identity_provider: Option<IdRef>,
    pub sms_number: Option<String>,
    pub country_of_residence: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// An application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct App {
    pub id: String,
    pub name: String,
    /// Where the app is served by wharf's router.
    pub web_url: String,
    /// Where to `git push` the app's source.
    pub git_url: String,
    /// While true, the router answers 503 instead of passing requests to the app.
    pub maintenance: bool,
    /// While true (the default), plain-HTTP requests for the app's hostnames that have a
    /// certificate are redirected to HTTPS (`308`).
    pub https_redirect: bool,
    pub stack: NamedRef,
    pub build_stack: NamedRef,
    pub region: NamedRef,
    pub owner: UserRef,
    pub generation: Generation,
    pub organization: Option<NamedRef>,
    pub team: Option<NamedRef>,
    pub space: Option<NamedRef>,
    pub acm: bool,
    pub internal_routing: Option<bool>,
    pub buildpack_provided_description: Option<String>,
    pub repo_size: Option<u64>,
    pub slug_size: Option<u64>,
    pub archived_at: Option<String>,
    /// When the app's current release was made; `null` before its first release.
    pub released_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// `POST /apps`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AppCreate {
    /// The app's name; a name is generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = field_schema::new_app_name))]
    pub name: Option<String>,
    /// Accepted for Heroku compatibility; wharf has one region, `local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = field_schema::region))]
    pub region: Option<String>,
    /// The build stack (the server's default, `WHARF_STACK`, unless given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = field_schema::stack))]
    pub stack: Option<String>,
    /// Accepted for Heroku compatibility and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_flags: Option<Vec<String>>,
}

/// `PATCH /apps/{app}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AppUpdate {
    /// A new name for the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = field_schema::app_rename))]
    pub name: Option<String>,
    /// Turn maintenance mode on or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<bool>,
    /// Redirect plain-HTTP requests for hostnames with a certificate to HTTPS, or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_redirect: Option<bool>,
    /// The build stack for the next build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = field_schema::stack))]
    pub build_stack: Option<String>,
}

/// Config vars as returned by the API: key → value.
pub type ConfigVarsBody = BTreeMap<String, String>;

/// A release: an immutable pair of a build and a config snapshot, numbered per app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Release {
    pub id: String,
    /// 1, 2, 3… per app, never reused.
    pub version: u32,
    pub description: String,
    pub status: ReleaseStatus,
    /// Why a failed release failed (a wharf extension; absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// True for the release the app runs now.
    pub current: bool,
    pub app: NamedRef,
    /// The build image of the release; `null` until the app's first build.
    pub slug: Option<IdRef>,
    /// The stack the image is built on, `wharf-1` for a host-bound image; `null` without an
    /// image. wharf extension.
    #[serde(default)]
    pub stack: Option<NamedRef>,
    /// The digest of the stack's run image the image's bottom layers are (and that it runs
    /// on); `null` for a host-bound image. wharf extension.
    #[serde(default)]
    pub run_image: Option<String>,
    /// Whether the image is whole (on a stack) and runs under any container runtime; `false`
    /// for a host-bound image, which runs only on a wharf host's `/usr`. wharf extension.
    #[serde(default)]
    pub portable: bool,
    pub user: UserRef,
    pub addon_plan_names: Vec<String>,
    pub artifacts: Vec<ReleaseArtifact>,
    /// Streams the release phase's output; `null` when the release has none.
    pub output_stream_url: Option<String>,
    /// Whether `POST /apps/{app}/releases {"release": …}` may roll back to this release.
    pub eligible_for_rollback: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// `POST /apps/{app}/registry-pushes`: which release's image to push (the current one when
/// absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegistryPushCreate {
    /// The release (id, or version as `3`, `"3"` or `"v3"`)
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text_or_number"
    )]
    #[cfg_attr(feature = "openapi", schema(schema_with = field_schema::release_ident))]
    pub release: Option<String>,
}

/// A release image pushed to the server's registry (`WHARF_REGISTRY_URL`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RegistryPush {
    /// Where it is now: `host/…/app:v<N>`
    pub image: String,
    /// The image's manifest digest, the same there as in wharf
    pub digest: String,
    /// The release whose image it is
    pub release: DynoRelease,
}

/// A release as Kubernetes objects (`GET /apps/{app}/releases/{release}/manifests`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReleaseManifests {
    /// The release they are of
    pub release: DynoRelease,
    /// The objects, in the order to apply them: the namespace, the Secrets, the release
    /// phase's Job, the Deployments, the Service, the Ingress
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub objects: Vec<serde_json::Value>,
}

/// `POST /apps/{app}/releases`: a rollback (`release`) or a release of an existing image
/// (`slug`: promotion). Exactly one of the two.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReleaseCreate {
    /// Roll back to this release (id, or version as `3`, `"3"` or `"v3"`): a new release with
    /// its image and its config.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text_or_number"
    )]
    #[cfg_attr(feature = "openapi", schema(schema_with = field_schema::release_ident))]
    pub release: Option<String>,
    /// Release this image (its digest: the `slug.id` of a release, of this app or another) with
    /// the app's current config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    /// The new release's description (with `slug`; a rollback is described "Rollback to vK").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A string, or a whole number taken as its decimal text.
fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Ident {
        Text(String),
        Number(u64),
    }
    Ok(Option::<Ident>::deserialize(d)?.map(|ident| match ident {
        Ident::Text(text) => text,
        Ident::Number(n) => n.to_string(),
    }))
}

/// `GET /apps/{app}/releases/{from}/diff/{to}`: what changed between two releases (a wharf
/// extension). Config values appear only when asked for (`show_values=true`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReleaseDiff {
    pub from: u32,
    pub to: u32,
    /// The image digests; equal when only config changed.
    pub image: Change,
    /// What built each image (`python`, `node`, `buildpack`, …); `null` when unknown.
    pub provider: Change,
    /// Process types added, removed or whose command changed.
    pub process_types: Vec<KeyChange>,
    /// Config vars added, removed or changed.
    pub config_vars: Vec<KeyChange>,
}

/// A value in two releases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Change {
    pub from: Option<String>,
    pub to: Option<String>,
    pub changed: bool,
}

/// One key that differs between two releases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct KeyChange {
    pub key: String,
    /// `added`, `removed` or `changed`.
    pub change: String,
    /// The old value (hidden config values are `null`).
    pub from: Option<String>,
    /// The new value (hidden config values are `null`).
    pub to: Option<String>,
}

/// A stack (`GET /stacks`): the base images apps are built and run on. Heroku's fields, plus
/// wharf's: its Debian release and its two images once made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Stack {
    pub id: String,
    pub name: String,
    /// Heroku's availability state: always `public`.
    pub state: String,
    /// Whether new apps get it.
    pub default: bool,
    /// wharf's: `absent` (not made yet: `POST /stacks`), `making`, `ready`, or `host` (the
    /// host-bound stack `wharf-1`: builds and apps use the host's `/usr`, nothing to make).
    pub status: String,
    /// The Debian release it is made from.
    pub suite: Option<String>,
    pub run_image: Option<StackImage>,
    pub build_image: Option<StackImage>,
    /// While (and after) it is made here: its output as plain text, live. Signed; needs no token.
    pub output_stream_url: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// One of a stack's images in the image store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct StackImage {
    /// The manifest's digest (`sha256:…`).
    pub digest: String,
    /// When its newest package index was published (its `SOURCE_DATE_EPOCH`).
    pub created: Option<String>,
    /// Its compressed size in bytes.
    pub size: u64,
    /// What it holds, `package=version`, sorted.
    pub packages: Vec<String>,
}

/// `POST /stacks`: make (or make again) one of wharf's stacks from Debian packages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StackCreate {
    /// `wharf-bookworm` or `wharf-trixie` to make one of wharf's stacks; any other name (2 to
    /// 40 lowercase letters, digits and `-`) with `run_image` and `build_image` to import one.
    pub name: String,
    /// To import: the run image, as skopeo names images (`oci:DIR[:TAG]`,
    /// `oci-archive:FILE[:TAG]`, `docker-archive:FILE`, `docker://REGISTRY/IMAGE[:TAG]`),
    /// read by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 1000))]
    pub run_image: Option<String>,
    /// To import: the build image (the run image plus what builds need), named as `run_image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 1000))]
    pub build_image: Option<String>,
}

/// `POST /gc`: what garbage collection freed (a wharf extension).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct GarbageCollection {
    /// Images kept: recent and current releases' images, and those running.
    pub images_kept: usize,
    /// Images (builds) removed from the image store.
    pub images_removed: usize,
    /// Blobs deleted (manifests, configs and layers no kept image uses).
    pub blobs_removed: usize,
    /// Files an interrupted write left, deleted.
    pub temp_files_removed: usize,
    /// Unpacked release trees removed, as `<app id>/v<N>`.
    pub release_trees_removed: Vec<String>,
    pub bytes_freed: u64,
}

/// An artifact a release is made of (Heroku: a slug or an OCI image).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReleaseArtifact {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Health {
    /// `ok` while the server can reach its database.
    pub status: String,
    pub version: String,
}

/// `POST /sources`: where to upload a source archive and where builds read it from. Both URLs
/// are signed and expire; neither needs a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Source {
    pub source_blob: SourceBlob,
}

/// The signed URLs of an uploaded (or to-be-uploaded) source archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SourceBlob {
    /// `GET` the archive; pass this as a build's `source_blob.url`.
    pub get_url: String,
    /// `PUT` the gzipped tar archive here (once).
    pub put_url: String,
}

/// `POST /apps/{app}/builds`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BuildCreate {
    pub source_blob: BuildSourceRequest,
    /// Accepted for Heroku compatibility; wharf detects the provider from the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buildpacks: Option<Vec<Buildpack>>,
}

/// Which uploaded source a build uses: its `get_url` from `POST /sources`, or its checksum.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BuildSourceRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `SHA256:<hex>` of an uploaded archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// What the source is (a commit, a tag); shown in build lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_description: Option<String>,
}

/// A buildpack as Heroku names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Buildpack {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// The source of a build, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BuildSource {
    /// `SHA256:<hex>` of the archive.
    pub checksum: Option<String>,
    pub url: Option<String>,
    pub version: Option<String>,
    pub version_description: Option<String>,
}

/// A build: source → image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Build {
    pub id: String,
    pub app: IdRef,
    /// Heroku's status: `pending` until the build ends, then `succeeded` or `failed`.
    pub status: String,
    /// wharf's finer status: `pending` (queued), `running`, `succeeded`, `failed`.
    pub phase: crate::build::BuildStatus,
    /// Streams the build's output as plain text, live, then in full once it has ended. Signed;
    /// needs no token.
    pub output_stream_url: String,
    pub source_blob: BuildSource,
    /// The release this build made, once it has succeeded.
    pub release: Option<IdRef>,
    /// The image, once built (`sha256:…`).
    pub slug: Option<IdRef>,
    pub buildpacks: Vec<Buildpack>,
    pub stack: String,
    pub user: UserRef,
    /// The provider that built it (`python`, `node`, …), once detected.
    pub provider: Option<String>,
    /// The language runtime and version it was built with (`python 3.13.5`), once built.
    pub runtime: Option<String>,
    /// Process types and their commands, once built.
    pub process_types: Option<BTreeMap<String, String>>,
    /// Why the build failed.
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A process type's formation: how many instances run, and how big each is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Formation {
    pub id: String,
    pub app: NamedRef,
    /// The process type (`web`, `worker`).
    #[serde(rename = "type")]
    pub process_type: String,
    pub quantity: u32,
    /// A dyno size name (`standard-1x`) or a memory size (`512M`).
    pub size: String,
    pub dyno_size: NamedRef,
    /// The command the type runs.
    pub command: String,
    pub created_at: String,
    pub updated_at: String,
}

/// `PATCH /apps/{app}/formation/{type}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FormationUpdate {
    /// An instance count (`2`), or as the Heroku CLI sends it, a string: `"2"`, `"+1"`, `"-1"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<crate::formation::QuantityChange>,
    /// A dyno size name or a memory size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
}

/// One entry of `PATCH /apps/{app}/formation`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FormationBatchEntry {
    #[serde(rename = "type")]
    pub process_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<crate::formation::QuantityChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
}

/// `PATCH /apps/{app}/formation`: several process types at once, all or none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FormationBatchUpdate {
    pub updates: Vec<FormationBatchEntry>,
}

/// A running (or starting, or crashed) instance of a process type — Heroku's "dyno".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Dyno {
    pub id: String,
    /// `web.1`, `worker.2`, `run.1`.
    pub name: String,
    #[serde(rename = "type")]
    pub process_type: String,
    /// `starting`, `up`, `crashed`, `stopping` or `down`.
    pub state: String,
    pub command: String,
    pub size: String,
    pub app: NamedRef,
    pub release: DynoRelease,
    /// `null`: attach through `wharf run`.
    pub attach_url: Option<String>,
    /// wharf: the process id, while running.
    pub pid: Option<u32>,
    /// wharf: the node it runs on, on an orchestrator (Docker Swarm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// wharf: the port the instance was given as `PORT`.
    pub port: Option<u16>,
    /// wharf: how often it was restarted after crashing.
    pub restarts: u32,
    /// wharf: how it last exited (`status 1`, `signal SIGKILL`).
    pub last_exit: Option<String>,
    /// wharf: while crashed, seconds until the next restart.
    pub next_restart_in: Option<u64>,
    pub created_at: String,
    /// When the state last changed.
    pub updated_at: String,
}

/// A release by id and version: the one a dyno runs, the one whose image was pushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DynoRelease {
    pub id: String,
    pub version: u32,
}

/// `POST /apps/{app}/log-sessions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LogSessionCreate {
    /// Only this process (`web.1`) or type (`web`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dyno: Option<String>,
    /// How many past lines to send first (default 100; a larger number than 1500 sends 1500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>, maximum = 4294967295_u64))]
    pub lines: Option<u32>,
    /// Only lines from `app` (the processes) or `wharf` (platform events), or `router`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Keep the stream open and send new lines as they come.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<bool>,
}

/// A log session: where to read the log from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LogSession {
    pub id: String,
    /// A signed URL serving `text/event-stream`; no token needed.
    pub logplex_url: String,
    pub created_at: String,
    pub updated_at: String,
}

/// A hostname the router sends to an app: its default `<app>.<WHARF_DOMAIN>` (kind `heroku`,
/// as Heroku's clients expect) or a custom domain (kind `custom`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Domain {
    pub id: String,
    pub app: NamedRef,
    pub hostname: String,
    /// `heroku` (the app's default hostname) or `custom`.
    pub kind: String,
    /// For a custom domain: the name to point a DNS CNAME record at (the app's default
    /// hostname).
    pub cname: Option<String>,
    /// `succeeded`: the router serves the hostname. (`none` for the default hostname.)
    pub status: String,
    /// With Automated Certificate Management on: `pending`, `issued` or `failing`.
    pub acm_status: Option<String>,
    /// Why the last attempt to issue its certificate failed.
    pub acm_status_reason: Option<String>,
    /// The certificate the router serves it with over HTTPS, if any.
    pub sni_endpoint: Option<NamedRef>,
    pub created_at: String,
    pub updated_at: String,
}

/// `POST /apps/{app}/domains`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DomainCreate {
    /// The hostname, e.g. `www.example.com`.
    pub hostname: String,
    /// The certificate (SNI endpoint id or name) to serve it with; any of the app's that
    /// covers it when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni_endpoint: Option<String>,
}

/// `PATCH /apps/{app}/domains/{domain}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DomainUpdate {
    /// The certificate (SNI endpoint id or name) to serve the domain with; null for any of
    /// the app's that covers it.
    pub sni_endpoint: Option<String>,
}

/// A TLS certificate the router serves for an app's hostnames (Heroku's SNI endpoint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SniEndpoint {
    pub id: String,
    pub name: String,
    pub display_name: Option<String>,
    pub app: NamedRef,
    /// The certificate and its intermediates, PEM.
    pub certificate_chain: String,
    /// The app's hostnames it serves.
    pub domains: Vec<String>,
    pub ssl_cert: SslCert,
    pub created_at: String,
    pub updated_at: String,
}

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SslCert {
    pub id: String,
    /// Its chain leads to a root authority the server's system trusts.
    #[serde(rename = "ca_signed?")]
    pub ca_signed: bool,
    /// Hostnames it is for (wildcards as `*.example.com`).
    pub cert_domains: Vec<String>,
    pub starts_at: String,
    pub expires_at: String,
    pub issuer: String,
    pub subject: String,
    #[serde(rename = "self_signed?")]
    pub self_signed: bool,
    /// Issued by wharf's Automated Certificate Management (ACME).
    pub acm: bool,
}

/// `POST /apps/{app}/sni-endpoints` and `PATCH /apps/{app}/sni-endpoints/{endpoint}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SniEndpointCreate {
    /// The certificate first, then its intermediates, PEM.
    pub certificate_chain: String,
    /// Its private key, PEM, unencrypted (stored encrypted).
    pub private_key: String,
}
