//! Page tokens: where the next page of a listing starts, sealed under the master key
//! (AES-256-GCM) with the listing itself as associated data. A token opens only for the listing
//! that handed it out: one from another project, another folder, another filter, or a server
//! with another master key is refused with a 400, never followed; nor can a client forge a
//! position, or read one (a folder's names stay out of URLs and logs).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use byos_domain::Problem;
use byos_secrets::MasterKey;

use crate::ServiceError;

/// What a page token's seal is bound to: a kind of listing and what selects it. Each part goes
/// in with its length first, so that two listings never share a context.
pub(crate) fn listing(kind: &str, parts: &[&str]) -> Vec<u8> {
    let mut context = b"byos page token v1".to_vec();
    for part in std::iter::once(&kind).chain(parts) {
        context.extend_from_slice(&(part.len() as u64).to_be_bytes());
        context.extend_from_slice(part.as_bytes());
    }
    context
}

/// The token of the page that starts after `position`, in the listing `context`.
pub(crate) fn seal(key: &MasterKey, context: &[u8], position: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(key.seal(position, context))
}

/// The position a client's token holds, if this server gave it for the listing `context`.
pub(crate) fn open(key: &MasterKey, context: &[u8], token: &str) -> Result<Vec<u8>, ServiceError> {
    let refused = || {
        ServiceError::from(Problem::invalid_request(
            "pageToken: not a token this server gave for this listing; start again without one",
        ))
    };
    let sealed = URL_SAFE_NO_PAD.decode(token).map_err(|_| refused())?;
    key.open(&sealed, context).map_err(|_| refused())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any text a client sends is refused, with the catalogue's 400, or (a token this
        /// server sealed for this listing) opened; any position comes back as it went in.
        #[test]
        fn tokens_from_anywhere_are_refused_and_positions_round_trip(
            stranger in prop_oneof![any::<String>(), "[A-Za-z0-9_-]{0,120}"],
            position in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let key = MasterKey::generate();
            let here = listing("browse", &["p", "a/", ""]);
            let refused = open(&key, &here, &stranger).err().and_then(|e| e.problem().cloned());
            prop_assert_eq!(refused.map(|p| p.code()), Some(byos_domain::ErrorCode::InvalidRequest));
            prop_assert_eq!(open(&key, &here, &seal(&key, &here, &position)).ok(), Some(position));
        }
    }

    #[test]
    fn a_token_opens_only_for_its_listing_and_its_server() {
        let key = MasterKey::generate();
        let here = listing("browse", &["p1", "a/", ""]);
        let token = seal(&key, &here, "f07.txt".as_bytes());
        assert_eq!(open(&key, &here, &token).ok(), Some(b"f07.txt".to_vec()));
        assert!(!token.contains("f07"), "the position is not readable: {token}");

        let elsewhere = [
            listing("browse", &["p2", "a/", ""]),
            listing("browse", &["p1", "b/", ""]),
            listing("browse", &["p1", "a/", "f"]),
            listing("browse", &["p1", "a/\0", ""]),
            listing("audit", &["p1", "a/", ""]),
        ];
        for context in &elsewhere {
            assert!(open(&key, context, &token).is_err(), "{context:?}");
        }
        assert!(open(&MasterKey::generate(), &here, &token).is_err(), "another server's key");
        let forged = URL_SAFE_NO_PAD.encode("f07.txt");
        for stranger in ["", "%%", forged.as_str(), &token[..token.len() - 2]] {
            let refused = open(&key, &here, stranger).err().and_then(|e| e.problem().cloned());
            assert_eq!(
                refused.map(|p| p.message().to_owned()).as_deref(),
                Some(
                    "Invalid request: pageToken: not a token this server gave for this listing; start again without one"
                ),
                "{stranger:?}"
            );
        }
    }
}
