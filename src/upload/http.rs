//! XEP-0363 §6 on the HTTP service: `PUT /upload/<id>/<name>` stores a slot's file,
//! `GET`/`HEAD` serve it (single byte ranges, RFC 9110 §14), `OPTIONS` answers CORS
//! preflights so web clients can upload.
//!
//! Files stream between the socket and the disk in chunks: memory per transfer stays in
//! kilobytes whatever the file's size.

use super::{file_path, part_path, valid_id, Upload};
use crate::http::io::{disk_file, Conn, DiskFile, CHUNK};
use crate::http::request::{Body, Request, Response};
use crate::router::Core;
use crate::storage::uploads::{self, Slot};
use smol::io::AsyncWriteExt;
use std::sync::Arc;

/// The methods served on upload URLs.
const METHODS: &str = "GET, HEAD, PUT, OPTIONS";

/// Media types a browser shows without running anything; every other type is served as
/// an attachment (`text/html` or `image/svg+xml` from an upload must never run as a page
/// of our origin).
fn shown_inline(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "image/jpeg"
            | "image/png"
            | "image/gif"
            | "image/webp"
            | "image/avif"
            | "image/heic"
            | "image/heif"
            | "image/bmp"
            | "text/plain"
    ) || (essence.starts_with("audio/") || essence.starts_with("video/"))
}

/// The slot id of an upload path `/upload/<id>/<name>`, if it has that shape.
fn slot_id(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(crate::http::UPLOAD_PREFIX)?;
    let (id, name) = rest.split_once('/')?;
    (valid_id(id) && !name.is_empty() && !name.contains('/')).then_some(id)
}

/// Answers a request under `/upload/`.
pub async fn serve(core: &Arc<Core>, upload: &Upload, req: &Request, conn: &mut Conn) -> Response {
    if req.method == "OPTIONS" {
        return crate::http::preflight(METHODS);
    }
    if !matches!(req.method.as_str(), "GET" | "HEAD" | "PUT") {
        return crate::http::method_not_allowed(METHODS);
    }
    let Some(id) = slot_id(req.path()) else {
        return Response::text(404, "no such file");
    };
    let id = id.to_owned();
    let lookup = id.clone();
    let slot = match core.storage.call(move |c| uploads::find(c, &lookup)).await {
        Ok(s) => s,
        Err(e) => {
            log::error!("upload: storage: {e}");
            return Response::text(500, "storage error");
        }
    };
    match (req.method.as_str(), slot) {
        (_, None) => Response::text(404, "no such file"),
        ("PUT", Some(slot)) => put(core, upload, req, conn, slot).await,
        (_, Some(slot)) if !slot.done => Response::text(404, "no such file (not uploaded yet)"),
        (_, Some(slot)) => get(upload, req, slot).await,
    }
}

/// Stores the body as the slot's file.
async fn put(
    core: &Arc<Core>,
    upload: &Upload,
    req: &Request,
    conn: &mut Conn,
    slot: Slot,
) -> Response {
    if slot.done {
        return Response::text(409, "this slot already has its file");
    }
    let now = crate::util::datetime::unix_now();
    if now - slot.created > upload.config.slot_timeout.as_secs() as i64 {
        return Response::text(403, "this upload slot has expired: ask for a new one");
    }
    if !req.has_length() {
        return Response::text(411, "Content-Length is required");
    }
    let length = conn.body_left();
    if length > slot.size {
        return Response::text(
            413,
            format!(
                "the body is larger than the slot's size ({} bytes)",
                slot.size
            ),
        );
    }
    if length != slot.size {
        return Response::text(
            400,
            format!(
                "Content-Length must be the slot's size ({} bytes)",
                slot.size
            ),
        );
    }
    if let Some(want) = &slot.content_type {
        let got = req
            .header("content-type")
            .map(|t| t.trim().to_ascii_lowercase());
        if got.as_deref() != Some(want.as_str()) {
            return Response::text(400, format!("Content-Type must be the slot's ({want})"));
        }
    }
    let part = part_path(&upload.dir, &slot.id);
    let opening = part.clone();
    let file = smol::unblock(move || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(opening)
    })
    .await;
    let mut file = match file {
        Ok(f) => disk_file(f),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Response::text(409, "an upload to this slot is already running")
        }
        Err(e) => {
            log::error!("upload: {}: {e}", part.display());
            return Response::text(500, "cannot store the file");
        }
    };
    match receive(conn, &mut file).await {
        Ok(()) => {}
        Err(e) => {
            log::info!("upload: {}: upload of {} failed: {e}", conn.peer, slot.id);
            drop(file);
            let _ = smol::fs::remove_file(&part).await;
            let mut r = Response::text(400, format!("the upload failed: {e}"));
            r.close = true;
            return r;
        }
    }
    drop(file);
    let done = file_path(&upload.dir, &slot.id);
    if let Err(e) = smol::fs::rename(&part, &done).await {
        log::error!("upload: {} → {}: {e}", part.display(), done.display());
        let _ = smol::fs::remove_file(&part).await;
        return Response::text(500, "cannot store the file");
    }
    let id = slot.id.clone();
    match core.storage.call(move |c| uploads::complete(c, &id)).await {
        Ok(true) => {
            log::info!(
                "upload: {}@{} stored {} bytes",
                slot.username,
                slot.host,
                slot.size
            );
            Response::new(201)
        }
        Ok(false) => {
            // The slot went (its account was deleted, or it expired) during the upload.
            let _ = smol::fs::remove_file(&done).await;
            Response::text(404, "the slot is gone")
        }
        Err(e) => {
            log::error!("upload: storage: {e}");
            let _ = smol::fs::remove_file(&done).await;
            Response::text(500, "storage error")
        }
    }
}

/// Copies the request body to `file` and makes it durable.
async fn receive(conn: &mut Conn, file: &mut DiskFile) -> std::io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = conn.read_body(&mut buf).await?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n]).await?;
    }
    file.flush().await?;
    file.with_mut(|f| f.sync_data()).await
}

/// A byte range of a file of `len` bytes, from a `Range` header (RFC 9110 §14.1.2): only
/// one range; `None` for a header we ignore (serve the whole file), `Some(Err(()))` for a
/// range past the end (416).
fn parse_range(header: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = header.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if a.is_empty() {
        // The last `b` bytes.
        if !digits(b) {
            return None;
        }
        let n: u64 = b.parse().ok()?;
        if n == 0 || len == 0 {
            return Some(Err(()));
        }
        return Some(Ok((len.saturating_sub(n), len - 1)));
    }
    if !digits(a) || !(b.is_empty() || digits(b)) {
        return None;
    }
    let start: u64 = a.parse().ok()?;
    let end: u64 = if b.is_empty() {
        len.saturating_sub(1)
    } else {
        b.parse().ok()?
    };
    if start >= len {
        return Some(Err(()));
    }
    if end < start {
        return None;
    }
    Some(Ok((start, end.min(len - 1))))
}

/// Serves a complete file (GET and HEAD).
async fn get(upload: &Upload, req: &Request, slot: Slot) -> Response {
    let path = file_path(&upload.dir, &slot.id);
    let opening = path.clone();
    let opened = smol::unblock(move || {
        let f = std::fs::File::open(opening)?;
        let len = f.metadata()?.len();
        Ok::<_, std::io::Error>((f, len))
    })
    .await;
    let (file, len) = match opened {
        Ok((f, len)) => (disk_file(f), len),
        Err(e) => {
            log::warn!("upload: {}: {e}", path.display());
            return Response::text(404, "no such file");
        }
    };
    let content_type = slot
        .content_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let disposition = format!(
        "{}; filename*=UTF-8''{}",
        if shown_inline(&content_type) {
            "inline"
        } else {
            "attachment"
        },
        super::percent_encode(&slot.filename)
    );
    let base = |status: u16| {
        Response::new(status)
            .with_header("Content-Type", content_type.clone())
            .with_header("Content-Disposition", disposition.clone())
            .with_header("Accept-Ranges", "bytes")
            // The URL is unguessable and never changes content.
            .with_header("Cache-Control", "private, max-age=31536000, immutable")
            // Belt and braces for anything a browser might still render.
            .with_header("Content-Security-Policy", "default-src 'none'; sandbox")
    };
    match req.header("range").and_then(|h| parse_range(h, len)) {
        None => base(200).with_body(Body::File {
            file,
            offset: 0,
            len,
        }),
        Some(Err(())) => Response::text(416, "range not satisfiable")
            .with_header("Content-Range", format!("bytes */{len}")),
        Some(Ok((start, end))) => base(206)
            .with_header("Content-Range", format!("bytes {start}-{end}/{len}"))
            .with_body(Body::File {
                file,
                offset: start,
                len: end - start + 1,
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-500", 100), Some(Ok((0, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Some(Ok((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=-0", 100), Some(Err(())));
        // Ignored: several ranges, other units, nonsense.
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
        assert_eq!(parse_range("bytes=9-2", 100), None);
        assert_eq!(parse_range("bytes=+1-2", 100), None);
    }

    #[test]
    fn only_passive_types_are_shown_inline() {
        assert!(shown_inline("image/jpeg"));
        assert!(shown_inline("video/mp4"));
        assert!(!shown_inline("text/html"));
        assert!(!shown_inline("image/svg+xml"));
        assert!(!shown_inline("application/xhtml+xml"));
        assert!(!shown_inline("application/pdf"));
    }

    #[test]
    fn upload_paths_name_a_valid_id_and_one_name() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(slot_id(&format!("/upload/{id}/a.jpg")), Some(id));
        assert_eq!(slot_id(&format!("/upload/{id}/")), None);
        assert_eq!(slot_id(&format!("/upload/{id}/../../roost.db")), None);
        assert_eq!(slot_id("/upload/../roost.db/x"), None);
        assert_eq!(slot_id(&format!("/upload/{id}")), None);
    }
}
