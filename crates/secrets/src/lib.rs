//! Secrets at rest and API tokens.
//!
//! Stored secrets (secret access keys, external ids) are sealed with AES-256-GCM under a master
//! key that never enters the database. Each sealed value is bound to the row it belongs to
//! through the associated data, so a ciphertext copied onto another row does not open.
//!
//! API tokens are 256 random bits; only their SHA-256 is stored. A fast hash is right here:
//! the tokens have full entropy, so there is nothing for a slow password hash to protect.

use std::fmt;
use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Why a secret could not be loaded, sealed or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    #[error("the master key is not 32 bytes of base64 (got {0} bytes)")]
    BadMasterKeyLength(usize),
    #[error("the master key is not valid base64")]
    BadMasterKeyEncoding,
    #[error("a sealed secret is damaged, or was sealed under another master key")]
    Unsealable,
    #[error("could not {action} the master key file {path}")]
    KeyFile {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The key file's mode lets others than its owner read or change it.
    #[error(
        "the master key file {path} is open to others than its owner (mode {mode:04o}); make it private: chmod 600 {path}"
    )]
    KeyFileNotPrivate { path: String, mode: u32 },
}

/// The key that seals stored secrets. Its `Debug` is redacted.
#[derive(Clone)]
pub struct MasterKey(Key<Aes256Gcm>);

/// The first byte of every sealed value: the format, so that it can change one day.
const SEAL_V1: u8 = 1;
const NONCE_LEN: usize = 12;

impl MasterKey {
    pub fn generate() -> MasterKey {
        MasterKey(Aes256Gcm::generate_key(OsRng))
    }

    /// Reads a key given as standard base64 of 32 bytes (`openssl rand -base64 32`).
    pub fn from_base64(encoded: &str) -> Result<MasterKey, SecretsError> {
        let bytes = STANDARD.decode(encoded.trim()).map_err(|_| SecretsError::BadMasterKeyEncoding)?;
        if bytes.len() != 32 {
            return Err(SecretsError::BadMasterKeyLength(bytes.len()));
        }
        Ok(MasterKey(*Key::<Aes256Gcm>::from_slice(&bytes)))
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.as_slice())
    }

    /// Reads the key file at `path`, which only its owner may read or write (as ssh does with
    /// private keys: a key that others could read may already be theirs).
    pub fn from_file(path: &Path) -> Result<MasterKey, SecretsError> {
        let file_error = |action, source| SecretsError::KeyFile { action, path: path.display().to_string(), source };
        let contents = std::fs::read_to_string(path).map_err(|e| file_error("read", e))?;
        check_private(path)?;
        MasterKey::from_base64(&contents)
    }

    /// Reads the key file at `path` (see [`MasterKey::from_file`]), or creates it with a new key,
    /// readable by its owner only. Returns the key and whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(MasterKey, bool), SecretsError> {
        let file_error = |action, source| SecretsError::KeyFile { action, path: path.display().to_string(), source };
        match std::fs::read_to_string(path) {
            Ok(contents) => {
                check_private(path)?;
                Ok((MasterKey::from_base64(&contents)?, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = MasterKey::generate();
                write_private_file(path, format!("{}\n", key.to_base64()).as_bytes())
                    .map_err(|e| file_error("create", e))?;
                Ok((key, true))
            }
            Err(e) => Err(file_error("read", e)),
        }
    }

    /// A short public value that identifies the key without revealing it; the store keeps it
    /// so that a server started with the wrong key refuses to run instead of failing later.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"byos master key fingerprint v1\0");
        hasher.update(self.0.as_slice());
        hex(&hasher.finalize()[..8])
    }

    /// Seals `plaintext`, bound to `context` (for example the id of the row that stores it).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let cipher = Aes256Gcm::new(&self.0);
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = cipher
            .encrypt(&nonce, Payload { msg: plaintext, aad: context })
            // Encryption fails only for plaintexts over 64 GiB.
            .unwrap_or_else(|_| unreachable!("AES-GCM refused a small plaintext"));
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(SEAL_V1);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// Opens a value sealed by [`MasterKey::seal`] with the same key and context.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, SecretsError> {
        let [SEAL_V1, rest @ ..] = sealed else {
            return Err(SecretsError::Unsealable);
        };
        if rest.len() < NONCE_LEN {
            return Err(SecretsError::Unsealable);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        Aes256Gcm::new(&self.0)
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: context })
            .map_err(|_| SecretsError::Unsealable)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.fingerprint())
    }
}

/// Refuses a key file that its group or others may read or write. The mode is that of the file
/// a symbolic link leads to, as mounted secrets often are links.
fn check_private(path: &Path) -> Result<(), SecretsError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let metadata = std::fs::metadata(path).map_err(|source| SecretsError::KeyFile {
            action: "read",
            path: path.display().to_string(),
            source,
        })?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretsError::KeyFileNotPrivate { path: path.display().to_string(), mode });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Writes a new file that only its owner can read (mode 0600), failing if it exists.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// A new external id for an `aws-role` credential: `byos-` and 128 random bits in hex. The
/// platform makes it, never the caller, so that no caller can name another customer's id.
pub fn generate_external_id() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    format!("byos-{}", hex(&bytes))
}

/// A new console session's secret, or its CSRF token: 256 random bits, URL-safe base64.
pub fn generate_session_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The fewest bits of entropy a token chosen by an operator must carry, as many as a random
/// UUID's and half of a generated token's.
pub const MIN_OPERATOR_TOKEN_BITS: u32 = 128;

/// Why a token chosen by an operator is refused. Each message says how to make a good one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OperatorTokenError {
    #[error("a token is printable ASCII characters without spaces; make one with `openssl rand -base64 32`")]
    NotPrintable,
    #[error(
        "a token must carry at least {MIN_OPERATOR_TOKEN_BITS} bits of entropy, and this one carries about {bits} \
         ({length} characters from an alphabet of {alphabet}); make one with `openssl rand -base64 32`"
    )]
    TooWeak { bits: u32, length: usize, alphabet: u32 },
}

/// An estimate of a token's entropy in bits, and the size of the alphabet it assumes: the
/// length times log2 of the alphabet the characters come from. The alphabet is the smallest of
/// decimal digits (10), hexadecimal digits of one case (16), or else the union of the classes
/// the token uses: lowercase (26), uppercase (26), digits (10) and the other printable ASCII
/// characters (32). A token chosen at random from its alphabet carries this much; a word or a
/// pattern carries less, which no estimate can see.
pub fn estimated_bits(value: &str) -> (f64, u32) {
    let all = |f: fn(&u8) -> bool| value.bytes().all(|b| f(&b));
    let alphabet = if all(u8::is_ascii_digit) {
        10
    } else if all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        || all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b))
    {
        16
    } else {
        let any = |f: fn(&u8) -> bool| value.bytes().any(|b| f(&b));
        let classes = [
            (any(u8::is_ascii_lowercase), 26),
            (any(u8::is_ascii_uppercase), 26),
            (any(u8::is_ascii_digit), 10),
            (any(|b| !b.is_ascii_alphanumeric()), 32),
        ];
        classes.iter().filter(|(used, _)| *used).map(|(_, size)| size).sum()
    };
    let length = value.chars().count() as f64;
    (length * f64::from(alphabet).log2(), alphabet)
}

/// A bearer token in clear: shown once when created, never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

/// The prefix of every token, so that secret scanners can recognise a leaked one.
pub const TOKEN_PREFIX: &str = "byos_";

impl ApiToken {
    pub fn generate() -> ApiToken {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        ApiToken(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// A token chosen by an operator (`BYOS_ADMIN_TOKEN`). It must carry at least
    /// [`MIN_OPERATOR_TOKEN_BITS`], estimated from its length and its alphabet
    /// ([`estimated_bits`]): it guards every admin route, so no guess may have a chance.
    pub fn from_operator(value: &str) -> Result<ApiToken, OperatorTokenError> {
        let value = value.trim();
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(OperatorTokenError::NotPrintable);
        }
        let (bits, alphabet) = estimated_bits(value);
        if bits < f64::from(MIN_OPERATOR_TOKEN_BITS) {
            // Rounded down, so that the message never claims the minimum for a token below it.
            let bits = bits.floor() as u32;
            return Err(OperatorTokenError::TooWeak { bits, length: value.len(), alphabet });
        }
        Ok(ApiToken(value.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> String {
        hash_token(&self.0)
    }

    /// The first characters, stored and shown so that people can tell their tokens apart.
    pub fn hint(&self) -> String {
        self.0.chars().take(TOKEN_PREFIX.len() + 4).collect()
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiToken({}…)", self.hint())
    }
}

/// The stored form of a presented bearer token.
pub fn hash_token(presented: &str) -> String {
    hex(&Sha256::digest(presented.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::generate()
    }

    #[test]
    fn external_ids_carry_128_random_bits() {
        let (a, b) = (generate_external_id(), generate_external_id());
        assert_ne!(a, b);
        let digits = a.strip_prefix("byos-").unwrap_or_default();
        assert!(digits.len() == 32 && digits.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert!(in_aws_external_id_alphabet(&a), "{a}");
    }

    /// AWS's external id alphabet: letters, digits and `+=,.@:/_-`.
    fn in_aws_external_id_alphabet(id: &str) -> bool {
        id.bytes().all(|c| c.is_ascii_alphanumeric() || b"+=,.@:/_-".contains(&c))
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_context() {
        let k = key();
        let sealed = k.seal(b"wJalrXUtnFEMI/K7MDENG", b"cred-1");
        assert!(!sealed.windows(6).any(|w| w == b"wJalrX"), "the plaintext shows through");
        assert_eq!(k.open(&sealed, b"cred-1").ok().as_deref(), Some(&b"wJalrXUtnFEMI/K7MDENG"[..]));
        assert!(matches!(k.open(&sealed, b"cred-2"), Err(SecretsError::Unsealable)));
        assert!(matches!(key().open(&sealed, b"cred-1"), Err(SecretsError::Unsealable)));
        // Two seals of one value differ: the nonce is fresh each time.
        assert_ne!(k.seal(b"x", b""), k.seal(b"x", b""));
        assert!(matches!(k.open(&[], b""), Err(SecretsError::Unsealable)));
        assert!(matches!(k.open(&[2, 0, 0], b""), Err(SecretsError::Unsealable)));
        let mut tampered = sealed;
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(matches!(k.open(&tampered, b"cred-1"), Err(SecretsError::Unsealable)));
    }

    #[test]
    fn master_keys_round_trip_and_are_checked() {
        let k = key();
        let again = MasterKey::from_base64(&k.to_base64()).unwrap();
        assert_eq!(again.fingerprint(), k.fingerprint());
        assert_ne!(key().fingerprint(), k.fingerprint());
        assert!(matches!(MasterKey::from_base64("c2hvcnQ="), Err(SecretsError::BadMasterKeyLength(5))));
        assert!(matches!(MasterKey::from_base64("not base64!"), Err(SecretsError::BadMasterKeyEncoding)));
        assert!(!format!("{k:?}").contains(&k.to_base64()));
    }

    #[test]
    fn key_file_is_created_private_then_reused() {
        let dir = std::env::temp_dir().join(format!("byos-secrets-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("master.key");
        let _ = std::fs::remove_file(&path);
        let (first, created) = MasterKey::load_or_create(&path).unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777).ok();
            assert_eq!(mode, Some(0o600));
        }
        let (second, created) = MasterKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(first.fingerprint(), second.fingerprint());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn key_files_open_to_others_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("byos-secrets-mode-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("master.key");
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, format!("{}\n", key().to_base64())).unwrap();
        let shown = path.display().to_string();
        for mode in [0o644, 0o640, 0o604, 0o660, 0o620] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let refused = MasterKey::load_or_create(&path).map(|_| ()).map_err(|e| e.to_string());
            assert_eq!(
                refused,
                Err(format!(
                    "the master key file {shown} is open to others than its owner (mode {mode:04o}); make it private: chmod 600 {shown}"
                ))
            );
            assert!(matches!(MasterKey::from_file(&path), Err(SecretsError::KeyFileNotPrivate { .. })), "{mode:o}");
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert!(MasterKey::load_or_create(&path).is_ok_and(|(_, created)| !created), "{mode:o}");
            assert!(MasterKey::from_file(&path).is_ok(), "{mode:o}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tokens_are_random_and_stored_hashed() {
        let t = ApiToken::generate();
        assert!(t.expose().starts_with(TOKEN_PREFIX));
        assert_eq!(t.expose().len(), TOKEN_PREFIX.len() + 43);
        assert_ne!(t, ApiToken::generate());
        assert_eq!(t.hash(), hash_token(t.expose()));
        assert_eq!(t.hash().len(), 64);
        assert!(!format!("{t:?}").contains(t.expose()));
        assert!(ApiToken::from_operator("with space but long enough!!").is_err());
        assert!(ApiToken::from_operator("an-operator-chosen-token-123").is_ok());
    }

    /// Operators' tokens carry at least 128 bits by the estimate: length times log2 of the
    /// alphabet.
    #[test]
    fn operator_tokens_carry_128_bits() {
        let check = |value: &str| match ApiToken::from_operator(value) {
            Ok(_) => "accepted".to_owned(),
            Err(e) => e.to_string(),
        };
        // `openssl rand -base64 32`, `-hex 16` and `-hex 32`, and a generated token.
        assert_eq!(check("q3Yh0x8Tl1b7Z0cJm2Wf5nRr8kXyGv4sPz6aDuE1tQ0="), "accepted");
        assert_eq!(check("9f86d081884c7d659a2feaa0c55ad015"), "accepted");
        assert_eq!(check(&"A1".repeat(32)), "accepted");
        assert_eq!(check(ApiToken::generate().expose()), "accepted");
        // 28 lowercase letters are 131 bits; 27 are 126.
        assert_eq!(check(&"x".repeat(28)), "accepted");
        assert_eq!(
            check(&"x".repeat(27)),
            "a token must carry at least 128 bits of entropy, and this one carries about 126 (27 characters \
             from an alphabet of 26); make one with `openssl rand -base64 32`"
        );
        // Twenty-four characters were once enough; of one class they are not.
        assert!(check("abcdefghijklmnopqrstuvwx").contains("about 112 (24 characters from an alphabet of 26)"));
        assert!(check(&"7".repeat(38)).contains("about 126 (38 characters from an alphabet of 10)"));
        assert!(check("deadbeefdeadbeefdeadbeefdeadbee").contains("an alphabet of 16"));
        assert!(check("short").contains("about 23"));
        assert_eq!(
            check(" "),
            "a token is printable ASCII characters without spaces; make one with `openssl rand -base64 32`"
        );
        assert_eq!(estimated_bits("aZ9-").1, 94);
    }
}
