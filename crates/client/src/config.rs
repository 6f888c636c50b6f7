//! Login profiles: servers and tokens in `$XDG_CONFIG_HOME/byos/config.toml` (mode 0600), one
//! table per profile; `BYOS_SERVER` and `BYOS_TOKEN` override the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ClientError;

/// The profile used when none is named.
pub const DEFAULT_PROFILE: &str = "default";

/// A server and the token to call it with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    pub server: String,
    pub token: String,
}

/// The profiles' file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profiles {
    #[serde(default)]
    pub profiles: BTreeMap<String, Login>,
}

impl Profiles {
    /// Where the file is: `$XDG_CONFIG_HOME/byos/config.toml`, or `~/.config/byos/config.toml`.
    pub fn path() -> Result<PathBuf, ClientError> {
        let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
                Some(home) => PathBuf::from(home).join(".config"),
                None => {
                    return Err(ClientError::Usage(
                        "neither XDG_CONFIG_HOME nor HOME is set: there is nowhere to keep the login".to_owned(),
                    ));
                }
            },
        };
        Ok(base.join("byos").join("config.toml"))
    }

    /// Reads the file; no file is no profiles.
    pub fn load(path: &Path) -> Result<Profiles, ClientError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Profiles::default()),
            Err(e) => return Err(ClientError::Io { path: path.to_owned(), source: e }),
        };
        toml::from_str(&text).map_err(|e| ClientError::Config { path: path.to_owned(), what: e.to_string() })
    }

    /// Writes the file readable by its owner only (its folder too), replacing it whole.
    pub fn save(&self, path: &Path) -> Result<(), ClientError> {
        let text =
            toml::to_string(self).map_err(|e| ClientError::Config { path: path.to_owned(), what: e.to_string() })?;
        let folder = path.parent().unwrap_or(Path::new("."));
        create_private_dir(folder)?;
        write_private(path, text.as_bytes())
    }

    /// The login to use: `BYOS_SERVER` and `BYOS_TOKEN` when both are set (each overrides the
    /// profile's own), otherwise the profile's.
    pub fn login(&self, profile: Option<&str>) -> Result<Login, ClientError> {
        let env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        let stored = self.profiles.get(profile.unwrap_or(DEFAULT_PROFILE));
        let server = env("BYOS_SERVER").or_else(|| stored.map(|l| l.server.clone()));
        let token = env("BYOS_TOKEN").or_else(|| stored.map(|l| l.token.clone()));
        match (server, token) {
            (Some(server), Some(token)) => Ok(Login { server, token }),
            _ => Err(ClientError::NotLoggedIn { profile: profile.map(str::to_owned) }),
        }
    }
}

#[cfg(unix)]
fn create_private_dir(folder: &Path) -> Result<(), ClientError> {
    use std::os::unix::fs::DirBuilderExt;
    if folder.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(folder).map_err(ClientError::io(folder))
}

#[cfg(not(unix))]
fn create_private_dir(folder: &Path) -> Result<(), ClientError> {
    std::fs::create_dir_all(folder).map_err(ClientError::io(folder))
}

/// Replaces `path` with `bytes` in a file only its owner can read, whatever the umask: written
/// beside it under a temporary name, then renamed over it, so that a reader sees the old file
/// or the new one, never half of one.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.new"));
    let _ = std::fs::remove_file(&temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary).map_err(ClientError::io(&temporary))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(ClientError::io(&temporary))?;
    }
    std::io::Write::write_all(&mut file, bytes).and_then(|()| file.sync_all()).map_err(ClientError::io(&temporary))?;
    std::fs::rename(&temporary, path).map_err(ClientError::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_round_trip_privately() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("byos").join("config.toml");
        let mut profiles = Profiles::load(&path).unwrap();
        assert!(profiles.profiles.is_empty(), "no file is no profiles");
        let login = Login { server: "http://127.0.0.1:8080".to_owned(), token: "byos_secret".to_owned() };
        profiles.profiles.insert("lab".to_owned(), login);
        profiles.save(&path).unwrap();
        assert_eq!(Profiles::load(&path).unwrap(), profiles);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
    }

    #[test]
    fn a_broken_file_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[profiles.x]\nserver = 3\n").unwrap();
        let error = Profiles::load(&path).unwrap_err().to_string();
        assert!(error.contains("config.toml"), "{error}");
    }
}
