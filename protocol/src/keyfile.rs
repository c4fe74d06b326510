//! Key files: the only file access in this crate.
//!
//! Format: one line `chorus-ed25519-seed:<64 hex chars>` followed by a newline. The file is
//! created with mode 0600 (owner read/write only) and refused at load time if the group or
//! others may read or write it, like ssh does.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::keys::{Keypair, SEED_LEN};

const PREFIX: &str = "chorus-ed25519-seed:";

/// Errors loading or writing a key file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// Other users may read the file.
    #[error(
        "key file {path} has mode {mode:o}: group/others may access it; run `chmod 600 {path}`"
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The content is not a key file.
    #[error("key file {path} is malformed: expected one line `{PREFIX}<64 hex chars>`")]
    Malformed {
        /// The file.
        path: PathBuf,
    },
    /// Refusing to overwrite an existing file.
    #[error("key file {path} already exists; refusing to overwrite it")]
    Exists {
        /// The file.
        path: PathBuf,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Write `keypair` to a new file at `path` with mode 0600. Never overwrites.
pub fn write_key_file(path: &Path, keypair: &Keypair) -> Result<(), KeyFileError> {
    if path.exists() {
        return Err(KeyFileError::Exists {
            path: path.to_path_buf(),
        });
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io_err(path))?;
    let text = Zeroizing::new(format!("{PREFIX}{}\n", hex::encode(*keypair.seed())));
    file.write_all(text.as_bytes()).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))?;
    Ok(())
}

/// Load a keypair from `path`, refusing files that group or others can access.
pub fn read_key_file(path: &Path) -> Result<Keypair, KeyFileError> {
    let meta = fs::metadata(path).map_err(io_err(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::TooOpen {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text = Zeroizing::new(fs::read_to_string(path).map_err(io_err(path))?);
    parse_key_text(&text).ok_or_else(|| KeyFileError::Malformed {
        path: path.to_path_buf(),
    })
}

fn parse_key_text(text: &str) -> Option<Keypair> {
    let hex_part = text.trim_end_matches(['\n', '\r']).strip_prefix(PREFIX)?;
    let mut seed = Zeroizing::new([0u8; SEED_LEN]);
    if hex_part.len() != 2 * SEED_LEN {
        return None;
    }
    hex::decode_to_slice(hex_part, seed.as_mut()).ok()?;
    Some(Keypair::from_seed(&seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let kp = Keypair::from_seed(&[3u8; 32]);
        write_key_file(&path, &kp).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(read_key_file(&path).unwrap(), kp);
        assert!(matches!(
            write_key_file(&path, &kp),
            Err(KeyFileError::Exists { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn world_readable_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("open.key");
        write_key_file(&path, &Keypair::from_seed(&[4u8; 32])).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_key_file(&path).unwrap_err();
        assert!(matches!(err, KeyFileError::TooOpen { mode: 0o644, .. }));
        assert!(err.to_string().contains("chmod 600"));
    }

    #[cfg(unix)]
    #[test]
    fn malformed_file_is_a_clear_error() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.key");
        fs::write(&path, "not a key\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            read_key_file(&path),
            Err(KeyFileError::Malformed { .. })
        ));
    }
}
