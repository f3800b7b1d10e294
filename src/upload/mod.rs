//! XEP-0363 HTTP File Upload, a hosted service on `upload.<domain>`: local accounts ask for
//! a slot over XMPP and get an unguessable PUT URL and its GET URL on the HTTP service
//! (`http.rs` serves them).
//!
//! Files live in `<data dir>/upload/<id>`, where `id` is the slot's 128-bit random secret
//! in hex: the client's file name appears only in the URL and in `Content-Disposition`,
//! never in a path, so no name can leave the directory. A file is written as
//! `.<id>.part` and renamed when complete. Limits: a largest file, a per-account quota,
//! a per-account daily limit, a cap on all files (all checked when the slot is given, in
//! one storage transaction); files expire after `--upload-expires-days` (the archive's
//! retention by default) and go with their account (`roost deluser`).

pub mod http;

use crate::config::UploadConfig;
use crate::jid::Jid;
use crate::router::{self, Core, Service};
use crate::stanza::error::{ErrorType, StanzaCondition, StanzaError};
use crate::stanza::upload::{self, SlotRequest};
use crate::storage::uploads::{self, Refusal, Slot};
use crate::storage::StorageError;
use crate::xml::Element;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// XEP-0363's namespace.
pub use crate::stanza::upload::NS;

/// Longest file name kept (characters); longer ones are cut, keeping the extension.
const MAX_NAME_CHARS: usize = 120;

/// How often the expiry pass runs.
const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// The directory of uploaded files in `data_dir`.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("upload")
}

/// True if `id` is a slot id as we make them (32 lowercase hex digits): the only names
/// ever joined to the upload directory.
pub fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The complete file of slot `id`.
fn file_path(dir: &Path, id: &str) -> PathBuf {
    debug_assert!(valid_id(id));
    dir.join(id)
}

/// The file of slot `id` while it is being written.
fn part_path(dir: &Path, id: &str) -> PathBuf {
    debug_assert!(valid_id(id));
    dir.join(format!(".{id}.part"))
}

/// Removes the files of slots `ids` (complete or partial); what is already gone is fine.
pub fn remove_files(data_dir: &Path, ids: &[String]) {
    let dir = dir(data_dir);
    for id in ids.iter().filter(|i| valid_id(i)) {
        for p in [file_path(&dir, id), part_path(&dir, id)] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => log::warn!("upload: cannot remove {}: {e}", p.display()),
            }
        }
    }
}

/// The upload service (cheap to clone into a request's task).
#[derive(Clone)]
pub struct Upload {
    /// `upload.<domain>`.
    pub domain: String,
    /// The HTTP service's base URL.
    base_url: String,
    dir: PathBuf,
    config: UploadConfig,
}

impl Upload {
    /// The service for `core`'s domain, its files in the data directory (created, 0700).
    pub fn new(core: &Core, base_url: &str) -> std::io::Result<Upload> {
        let dir = dir(&core.config.data_dir);
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
        }
        Ok(Upload {
            domain: format!("upload.{}", core.domain),
            base_url: base_url.to_owned(),
            dir,
            config: core.config.upload.clone(),
        })
    }

    /// The URL of slot `id` for file name `name`.
    fn url(&self, id: &str, name: &str) -> String {
        format!(
            "{}{}{id}/{}",
            self.base_url,
            crate::http::UPLOAD_PREFIX,
            percent_encode(name)
        )
    }

    /// XEP-0363 §2: the service's disco#info, with the largest file size in a form.
    fn disco_info(&self) -> Element {
        use crate::stanza::disco::{DiscoInfo, Identity};
        use crate::stanza::forms::{DataForm, Field};
        let info = DiscoInfo {
            node: None,
            identities: vec![Identity::new("store", "file", Some("HTTP File Upload"))],
            features: vec![
                crate::ns::DISCO_INFO.to_owned(),
                crate::ns::DISCO_ITEMS.to_owned(),
                NS.to_owned(),
            ],
        };
        let mut query = Element::from(&info);
        let mut form = DataForm::with_form_type("result", NS);
        form.fields.push(
            Field::new("max-file-size", "text-single").with_value(self.config.max_size.to_string()),
        );
        query.push(Element::from(&form));
        query
    }

    /// Answers a slot request (§4) from `from` (already checked to be a local account).
    async fn slot(
        &self,
        core: &Arc<Core>,
        username: &str,
        request: &Element,
    ) -> Result<Element, StanzaError> {
        let req = SlotRequest::try_from(request)
            .map_err(|e| StanzaError::with_text(StanzaCondition::BadRequest, e.to_string()))?;
        let filename = sanitize_name(&req.filename);
        if filename.is_empty() {
            return Err(StanzaError::with_text(
                StanzaCondition::BadRequest,
                "the filename has no usable characters",
            ));
        }
        let (size, content_type) = (req.size, req.content_type);
        if size > self.config.max_size {
            return Err(too_large(self.config.max_size));
        }
        let id = crate::util::random::random_hex(16);
        let now = crate::util::datetime::unix_now();
        let slot = Slot {
            id: id.clone(),
            host: core.domain.clone(),
            username: username.to_owned(),
            filename: filename.clone(),
            size,
            content_type,
            created: now,
            done: false,
        };
        let limits = uploads::Limits {
            quota: self.config.quota,
            daily_quota: self.config.daily_quota,
            disk_cap: self.config.disk_cap,
        };
        let reserved = core
            .storage
            .call(move |c| uploads::reserve(c, &slot, &limits))
            .await
            .map_err(|e| {
                log::error!("upload: storage: {e}");
                StanzaError::new(StanzaCondition::InternalServerError)
            })?;
        if let Err(refusal) = reserved {
            return Err(self.refused(refusal, size));
        }
        log::info!("upload: slot for {username}@{}: {size} bytes", core.domain);
        let url = self.url(&id, &filename);
        Ok(Element::from(&upload::Slot {
            put: url.clone(),
            get: url,
        }))
    }

    /// The stanza error for a refused slot (§5: quota errors are `resource-constraint`,
    /// of type wait, with a retry time when one is known).
    fn refused(&self, refusal: Refusal, size: u64) -> StanzaError {
        let mib = |b: u64| format!("{:.1} MiB", b as f64 / 1048576.0);
        let (text, retry) = match refusal {
            Refusal::Quota { used } => (
                format!(
                    "Quota reached: your files use {} of {}; this one needs {}",
                    mib(used),
                    mib(self.config.quota),
                    mib(size)
                ),
                None,
            ),
            Refusal::Daily { retry_at } => (
                format!(
                    "Quota reached: at most {} of uploads a day",
                    mib(self.config.daily_quota)
                ),
                Some(retry_at),
            ),
            Refusal::Disk => ("The server's space for uploads is full".to_owned(), None),
        };
        let mut e = StanzaError::with_text(StanzaCondition::ResourceConstraint, text);
        e.error_type = ErrorType::Wait;
        if let Some(at) = retry {
            e.app = Some(Box::new(upload::retry(crate::util::datetime::format(at))));
        }
        e
    }
}

/// §5: a file above the largest size: `not-acceptable` with `<file-too-large/>` naming it.
fn too_large(max: u64) -> StanzaError {
    let mut e = StanzaError::with_text(
        StanzaCondition::NotAcceptable,
        format!("File too large. The maximum file size is {max} bytes"),
    );
    e.app = Some(Box::new(upload::file_too_large(max)));
    e
}

impl Service for Upload {
    fn receive(&self, core: &Arc<Core>, stanza: Element) {
        if stanza.name.as_str() != "iq" {
            // A message to the service cannot be delivered; presence is ignored.
            if stanza.name.as_str() == "message" && stanza.attr("type") != Some("error") {
                router::bounce(
                    core,
                    &stanza,
                    StanzaError::new(StanzaCondition::ServiceUnavailable),
                );
            }
            return;
        }
        let ty = stanza.attr("type").unwrap_or("");
        if ty != "get" && ty != "set" {
            return;
        }
        let Some(payload) = stanza.first_element() else {
            router::bounce(core, &stanza, StanzaError::new(StanzaCondition::BadRequest));
            return;
        };
        let local_user = stanza
            .attr("from")
            .and_then(|f| Jid::parse(f).ok())
            .filter(|j| j.domain() == core.domain)
            .and_then(|j| j.node().map(str::to_owned));
        let reply_with = |core: &Arc<Core>, child: Option<Element>| {
            let mut reply = Element::new("iq", crate::ns::CLIENT)
                .with_attr("type", "result")
                .with_attr("id", stanza.attr("id").unwrap_or(""))
                .with_attr("from", stanza.attr("to").unwrap_or(&self.domain))
                .with_attr("to", stanza.attr("from").unwrap_or(""));
            if let Some(c) = child {
                reply.push(c);
            }
            router::send_to(core, reply);
        };
        match (ty, payload.name.as_str(), payload.ns.as_str()) {
            ("get", "query", crate::ns::DISCO_INFO) if payload.attr("node").is_none() => {
                reply_with(core, Some(self.disco_info()))
            }
            ("get", "query", crate::ns::DISCO_ITEMS) => {
                reply_with(core, Some(Element::new("query", crate::ns::DISCO_ITEMS)))
            }
            ("get", "request", NS) => {
                let Some(user) = local_user else {
                    router::bounce(
                        core,
                        &stanza,
                        StanzaError::with_text(
                            StanzaCondition::NotAllowed,
                            "Only accounts of this server may upload files",
                        ),
                    );
                    return;
                };
                // Storage is asynchronous: the answer comes from a task of its own.
                let (me, core2, request) = (self.clone(), core.clone(), payload.clone());
                core.spawn(async move {
                    match me.slot(&core2, &user, &request).await {
                        Ok(slot) => {
                            let reply = Element::new("iq", crate::ns::CLIENT)
                                .with_attr("type", "result")
                                .with_attr("id", stanza.attr("id").unwrap_or(""))
                                .with_attr("from", stanza.attr("to").unwrap_or(&me.domain))
                                .with_attr("to", stanza.attr("from").unwrap_or(""))
                                .with_child(slot);
                            router::send_to(&core2, reply);
                        }
                        Err(e) => router::bounce(&core2, &stanza, e),
                    }
                });
            }
            _ => router::bounce(
                core,
                &stanza,
                StanzaError::new(StanzaCondition::ServiceUnavailable),
            ),
        }
    }
}

/// A client's file name made safe for a URL path segment and a `Content-Disposition`
/// header: its last path component, without control characters, quotes or backslashes,
/// no leading dots, cut to [`MAX_NAME_CHARS`] keeping the extension.
pub fn sanitize_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '\\' | '/'))
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim().to_owned();
    if cleaned.chars().count() <= MAX_NAME_CHARS {
        return cleaned;
    }
    let (stem, ext) = match cleaned.rfind('.') {
        Some(i) if cleaned.len() - i <= 12 => cleaned.split_at(i),
        _ => (cleaned.as_str(), ""),
    };
    let keep = MAX_NAME_CHARS - ext.chars().count();
    stem.chars().take(keep).chain(ext.chars()).collect()
}

/// Percent-encodes a path segment (RFC 3986 unreserved characters stay).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One expiry pass at `now`: files older than the retention, slots never used within the
/// slot timeout, and files without a slot (left by a crash, or by `roost deluser` when it
/// could not remove them). Returns how many files were removed.
pub async fn sweep(core: &Arc<Core>, now: i64) -> Result<usize, StorageError> {
    let days = core.config.upload_expires_days();
    let done_before = (days > 0).then(|| now - i64::from(days) * 24 * 3600);
    // Twice the slot timeout: an upload that started just in time may still be running.
    let pending_before = now - 2 * core.config.upload.slot_timeout.as_secs() as i64;
    let ids = core
        .storage
        .call(move |c| uploads::expire(c, done_before, pending_before))
        .await?;
    let data_dir = core.config.data_dir.clone();
    remove_files(&data_dir, &ids);
    let mut removed = ids.len();
    // Files without a slot.
    let dir = dir(&data_dir);
    let names: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect(),
        Err(_) => Vec::new(),
    };
    for name in names {
        let id = name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(".part"))
            .unwrap_or(&name)
            .to_owned();
        if !valid_id(&id) {
            continue;
        }
        let check = id.clone();
        if !core
            .storage
            .call(move |c| uploads::exists(c, &check))
            .await?
        {
            remove_files(&data_dir, &[id]);
            removed += 1;
        }
    }
    Ok(removed)
}

/// Runs [`sweep`] now and then every hour until shutdown.
pub async fn expiry_task(core: Arc<Core>) {
    use smol::future::FutureExt;
    let shutdown = core.shutdown_signal();
    loop {
        match sweep(&core, crate::util::datetime::unix_now()).await {
            Ok(0) => {}
            Ok(n) => log::info!("upload: removed {n} expired or orphaned files"),
            Err(StorageError::Closed) => return,
            Err(e) => log::error!("upload: expiry failed: {e}"),
        }
        let stop = async {
            let _ = shutdown.recv().await;
            true
        };
        let wait = async {
            smol::Timer::after(SWEEP_INTERVAL).await;
            false
        };
        if stop.or(wait).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_paths_controls_and_leading_dots() {
        assert_eq!(sanitize_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_name("C:\\Users\\me\\photo.jpg"), "photo.jpg");
        assert_eq!(sanitize_name("..hidden"), "hidden");
        assert_eq!(sanitize_name("a\r\nb\"c.txt"), "abc.txt");
        assert_eq!(sanitize_name("très cool.jpg"), "très cool.jpg");
        assert_eq!(sanitize_name("/"), "");
        let long = format!("{}.jpeg", "x".repeat(300));
        let cut = sanitize_name(&long);
        assert_eq!(cut.chars().count(), MAX_NAME_CHARS);
        assert!(cut.ends_with(".jpeg"));
    }

    #[test]
    fn ids_are_exactly_32_lowercase_hex_digits() {
        assert!(valid_id("0123456789abcdef0123456789abcdef"));
        assert!(!valid_id("0123456789ABCDEF0123456789abcdef"));
        assert!(!valid_id("../0123456789abcdef0123456789abc"));
        assert!(!valid_id("0123456789abcdef0123456789abcde"));
        assert!(!valid_id(""));
    }

    #[test]
    fn names_are_percent_encoded() {
        assert_eq!(percent_encode("très cool.jpg"), "tr%C3%A8s%20cool.jpg");
    }
}
