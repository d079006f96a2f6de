//! Artifacts stored once and named by their SHA-256: a sentence encoder's ONNX graph (~90 MB) and
//! its `tokenizer.json`, which every head of an encoder model shares. A checkpoint's feature spec
//! names them by digest (`[encoder]`), so the signature over the checkpoint covers them, and a
//! service finds them in its model folders as files named `<digest>` or `<digest>.<extension>`
//! (`vigil encoder build --store` writes them so). The bytes are checked against the digest on every
//! read; a file outside the folders, not a regular file, or larger than [`MAX_ARTIFACT_BYTES`] is
//! refused. Bytes still held elsewhere are shared, not read again.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

/// Largest artifact read.
pub const MAX_ARTIFACT_BYTES: usize = 1 << 30;

/// The artifact folders, and the artifacts read from them that someone still holds.
#[derive(Default)]
pub struct Artifacts {
    dirs: Vec<PathBuf>,
    held: Mutex<HashMap<String, Weak<Vec<u8>>>>,
    checked: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Artifacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Artifacts").field("dirs", &self.dirs).finish_non_exhaustive()
    }
}

impl Artifacts {
    /// Artifacts found in `dirs`.
    pub fn new(dirs: Vec<PathBuf>) -> Artifacts {
        Artifacts { dirs, ..Artifacts::default() }
    }

    /// The bytes whose SHA-256 is `digest` (lower-case hex). The reason given back names no path.
    pub fn get(&self, digest: &str) -> Result<Arc<Vec<u8>>, String> {
        if let Some(bytes) = self.held.lock().ok().and_then(|h| h.get(digest).and_then(Weak::upgrade)) {
            return Ok(bytes);
        }
        let path = self.find(digest).ok_or_else(|| {
            format!("no artifact {} in the model folders ({} of them)", short(digest), self.dirs.len())
        })?;
        let bytes = crate::checkpoint::read_file_in(&path, &self.dirs, MAX_ARTIFACT_BYTES)?;
        if crate::checkpoint::sha256_hex(&bytes) != digest {
            tracing::warn!(path = %path.display(), "an artifact's bytes do not match the digest it is named by");
            return Err(format!("artifact {}: its bytes do not match the digest", short(digest)));
        }
        let bytes = Arc::new(bytes);
        if let Ok(mut held) = self.held.lock() {
            held.retain(|_, w| w.strong_count() > 0);
            held.insert(digest.to_string(), Arc::downgrade(&bytes));
        }
        Ok(bytes)
    }

    /// Whether `what` (an artifact's digest with what was checked of it) passed its checks before.
    pub fn was_checked(&self, what: &str) -> bool {
        self.checked.lock().is_ok_and(|c| c.contains(what))
    }

    /// Remembers that `what` passed its checks.
    pub fn mark_checked(&self, what: &str) {
        if let Ok(mut c) = self.checked.lock() {
            c.insert(what.to_string());
        }
    }

    fn find(&self, digest: &str) -> Option<PathBuf> {
        let named = |p: &Path| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n == digest)
                || p.file_stem().and_then(|n| n.to_str()).is_some_and(|n| n == digest)
        };
        self.dirs
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flat_map(|entries| entries.filter_map(Result::ok).map(|e| e.path()))
            .find(|p| named(p))
    }
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_are_found_by_digest_checked_and_shared_while_held() {
        let dir = std::env::temp_dir().join(format!("vigil-artifacts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bytes = b"an encoder".to_vec();
        let digest = crate::checkpoint::sha256_hex(&bytes);
        std::fs::write(dir.join(format!("{digest}.onnx")), &bytes).unwrap();
        let store = Artifacts::new(vec![dir.clone()]);
        let a = store.get(&digest).unwrap();
        assert_eq!(*a, bytes);
        assert!(Arc::ptr_eq(&a, &store.get(&digest).unwrap()), "held bytes are shared");

        let other = crate::checkpoint::sha256_hex(b"something else");
        assert!(store.get(&other).unwrap_err().contains("no artifact"));
        std::fs::write(dir.join(&other), b"not what the name says").unwrap();
        assert!(store.get(&other).unwrap_err().contains("do not match"), "a file named by a wrong digest");
        assert!(Artifacts::default().get(&digest).is_err(), "no folders, no artifacts");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
