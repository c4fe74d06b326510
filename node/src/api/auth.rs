//! The admin token of write endpoints: a random secret in a 0600 file, checked in constant
//! time from `Authorization: Bearer <token>`.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;

use super::ApiState;
use super::error::ApiError;

/// Random bytes in a new token (256 bits; stored as 64 hex characters).
pub const TOKEN_BYTES: usize = 32;

/// Longest token file accepted (a token is one line; anything longer is not a token file).
const MAX_TOKEN_FILE: u64 = 4096;

/// `true` if `given` equals `expected`. The time taken depends only on the lengths, never on
/// where the first difference is.
pub fn token_matches(given: &str, expected: &str) -> bool {
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// Read the admin token from `path`, or create the file with a new random token (mode 0600,
/// parent directories created) if it does not exist. The token is the file's first line,
/// trimmed; an existing file that group or others may access, or that holds no token, is an
/// error (like ssh refuses open key files).
pub fn load_or_create_token(path: &Path) -> io::Result<String> {
    match read_token(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| io::Error::other(format!("OS random generator: {e}")))?;
    let token = hex::encode(bytes);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = match options.open(path) {
        Ok(f) => f,
        // Another process created it between our read and our create: use theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return read_token(path),
        Err(e) => return Err(e),
    };
    file.write_all(format!("{token}\n").as_bytes())?;
    file.sync_all()?;
    Ok(token)
}

fn read_token(path: &Path) -> io::Result<String> {
    let meta = fs::metadata(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "admin token file {} has mode {mode:o}: group/others may access it; run `chmod 600 {}`",
                    path.display(),
                    path.display()
                ),
            ));
        }
    }
    if meta.len() > MAX_TOKEN_FILE {
        return Err(invalid_token_file(path));
    }
    let text = fs::read_to_string(path)?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(invalid_token_file(path));
    }
    Ok(token.to_owned())
}

fn invalid_token_file(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "admin token file {} does not hold a token (one line)",
            path.display()
        ),
    )
}

/// The token of an `Authorization: Bearer <token>` header value (scheme case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Extractor that admits a request only with the right admin token (401 otherwise).
#[derive(Clone, Copy, Debug)]
pub struct Admin;

impl FromRequestParts<ApiState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
            .ok_or(ApiError::Unauthorized)?;
        if token_matches(given, &state.admin_token) {
            Ok(Admin)
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn compare_and_parse() {
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abd", "abc"));
        assert!(!token_matches("ab", "abc"));
        assert!(!token_matches("", "abc"));
        assert_eq!(bearer("Bearer xyz"), Some("xyz"));
        assert_eq!(bearer("bearer  xyz "), Some("xyz"));
        assert_eq!(bearer("Basic xyz"), None);
        assert_eq!(bearer("xyz"), None);
    }

    #[test]
    fn token_file_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/admin.token");
        let t1 = load_or_create_token(&path).unwrap();
        assert_eq!(t1.len(), 2 * TOKEN_BYTES);
        assert!(t1.chars().all(|c| c.is_ascii_hexdigit()));
        let t2 = load_or_create_token(&path).unwrap();
        assert_eq!(t1, t2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            let err = load_or_create_token(&path).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        }
        fs::write(&path, "\n").unwrap();
        let err = load_or_create_token(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn two_tokens_differ() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_token(&dir.path().join("a")).unwrap();
        let b = load_or_create_token(&dir.path().join("b")).unwrap();
        assert_ne!(a, b);
    }
}
