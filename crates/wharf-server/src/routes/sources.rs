//! `/sources`: where clients upload source archives. `POST /sources` hands out a signed upload
//! URL and a signed download URL; the upload streams to disk, hashing as it goes, and the archive
//! is checked (paths, links, devices, sizes) before anything may build it.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use wharf_core::api::{ErrorBody, Source, SourceBlob};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::AppState;

/// How long the URLs of a new source stay valid.
pub const SOURCE_URL_TTL: Duration = Duration::from_secs(60 * 60);

/// The `expires` and `signature` of a signed URL.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Signature {
    /// Unix time after which the URL is refused.
    pub expires: Option<String>,
    /// HMAC of the method, path and expiry.
    pub signature: Option<String>,
}

impl Signature {
    pub fn check(&self, state: &AppState, method: &str, path: &str) -> ApiResult<()> {
        state
            .signer
            .verify(
                method,
                path,
                self.expires.as_deref(),
                self.signature.as_deref(),
            )
            .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, "forbidden", e.to_string()))
    }
}

/// What an upload stored.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Uploaded {
    /// `SHA256:<hex>` of the archive; a build may name its source by it.
    pub checksum: String,
    pub size: u64,
    /// Files and directories in the archive.
    pub entries: u64,
}

fn blob_path(id: &str) -> String {
    format!("/sources/{id}/blob")
}

/// A source's signed URLs.
pub fn source_blob(state: &AppState, id: &str) -> SourceBlob {
    let path = blob_path(id);
    let base = state.links.public_url.trim_end_matches('/');
    SourceBlob {
        get_url: format!(
            "{base}{path}?{}",
            state.signer.sign("GET", &path, SOURCE_URL_TTL)
        ),
        put_url: format!(
            "{base}{path}?{}",
            state.signer.sign("PUT", &path, SOURCE_URL_TTL)
        ),
    }
}

/// The source id in a `get_url` this server handed out, if `url` is one.
pub fn source_id_from_url(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next()?;
    let rest = &path[path.find("/sources/")? + "/sources/".len()..];
    let id = rest.strip_suffix("/blob")?;
    uuid::Uuid::parse_str(id).ok().map(|u| u.to_string())
}

/// Makes a source to upload an archive to.
#[utoipa::path(post, path = "/sources", tag = "sources",
    responses((status = 201, body = Source), crate::routes::CommonErrors))]
pub async fn create(State(state): State<AppState>) -> ApiResult<(StatusCode, Json<Source>)> {
    let source = state.store.create_source().await?;
    Ok((
        StatusCode::CREATED,
        Json(Source {
            source_blob: source_blob(&state, &source.id),
        }),
    ))
}

/// Uploads the source's archive (a gzipped tar), once. Needs the signed `put_url`, no token.
#[utoipa::path(put, path = "/sources/{id}/blob", tag = "sources", security(()),
    params(("id" = String, Path, description = "The source's id"), Signature),
    request_body(content = inline(crate::routes::RawBytes), content_type = "application/gzip", description = "A gzipped tar archive of the app's source"),
    responses(
        (status = 200, description = "Stored and checked", body = Uploaded),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Already uploaded", body = ErrorBody),
        (status = 413, description = "Larger than the upload limit", body = ErrorBody),
        (status = 422, description = "Not a gzipped tar, empty, or an entry that is refused (named in the message)", body = ErrorBody),
        crate::routes::SignedErrors,
    ))]
pub async fn upload(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(signature): Query<Signature>,
    body: Body,
) -> ApiResult<Json<Uploaded>> {
    signature.check(&state, "PUT", &blob_path(&id))?;
    let source = state.store.source(&id).await?;
    if source.sha256.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("source `{id}` was already uploaded: make a new one with POST /sources"),
        ));
    }
    let limits = state.control.builds().settings().limits;
    let final_path = state.control.builds().source_path(&id);
    let dir = final_path
        .parent()
        .expect("sources live in a directory")
        .to_path_buf();
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(ApiError::internal)?;
    let temp = dir.join(format!("{id}.upload-{}", uuid::Uuid::new_v4().simple()));
    let stored = receive(body, &temp, limits.max_archive_bytes).await;
    let (sha256, size) = match stored {
        Ok(done) => done,
        Err(e) => {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(e);
        }
    };
    let check_path = temp.clone();
    let checked =
        tokio::task::spawn_blocking(move || wharf_image::archive::check(&check_path, &limits))
            .await
            .map_err(ApiError::internal)?;
    let summary = match checked {
        Ok(summary) => summary,
        Err(e) => {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(ApiError::invalid_params(format!(
                "the archive was refused: {e}"
            )));
        }
    };
    tokio::fs::rename(&temp, &final_path)
        .await
        .map_err(ApiError::internal)?;
    if let Err(e) = state.store.mark_source_uploaded(&id, &sha256, size).await {
        let _ = tokio::fs::remove_file(&final_path).await;
        return Err(e.into());
    }
    tracing::info!(source = %id, size, sha256 = %sha256, "source uploaded");
    Ok(Json(Uploaded {
        checksum: format!("SHA256:{sha256}"),
        size,
        entries: summary.entries,
    }))
}

/// Streams `body` into `path`, hashing it; refuses it past `max` bytes.
async fn receive(body: Body, path: &std::path::Path, max: u64) -> ApiResult<(String, u64)> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(ApiError::internal)?;
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("the upload broke off: {e}")))?;
        size += chunk.len() as u64;
        if size > max {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                format!("the archive is over the {max}-byte upload limit (WHARF_MAX_SOURCE_BYTES): leave large files out with .slugignore"),
            ));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    file.sync_all().await.map_err(ApiError::internal)?;
    if size == 0 {
        return Err(ApiError::invalid_params(
            "the upload is empty: send a gzipped tar archive of the source",
        ));
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Downloads the source's archive. Needs the signed `get_url`, no token.
#[utoipa::path(get, path = "/sources/{id}/blob", tag = "sources", security(()),
    params(("id" = String, Path, description = "The source's id"), Signature),
    responses(
        (status = 200, description = "The archive", content(("application/gzip"))),
        (status = 404, description = "No such source, or not uploaded yet", body = ErrorBody),
        crate::routes::SignedErrors,
    ))]
pub async fn download(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(signature): Query<Signature>,
) -> ApiResult<Response> {
    signature.check(&state, "GET", &blob_path(&id))?;
    let source = state.store.source(&id).await?;
    if source.sha256.is_none() {
        return Err(ApiError::not_found(format!(
            "source `{id}` has no archive yet: PUT one to its put_url"
        )));
    }
    let file = tokio::fs::File::open(state.control.builds().source_path(&id))
        .await
        .map_err(ApiError::internal)?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok(([(header::CONTENT_TYPE, "application/gzip")], body).into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_source_ids_from_urls() {
        let id = "6f1c2b4e-2f7d-4a53-9d7c-0f4a3b2c1d0e";
        let url = format!("http://127.0.0.1:7070/sources/{id}/blob?expires=1&signature=ab");
        assert_eq!(super::source_id_from_url(&url).as_deref(), Some(id));
        assert_eq!(
            super::source_id_from_url("http://x/sources/nope/blob"),
            None
        );
        assert_eq!(super::source_id_from_url("http://x/apps/a"), None);
    }
}
