//! A bucket's CORS rules, and whether they let the console upload from a browser: a rule for
//! its origin that allows the method, and the `ETag` header exposed (multipart uploads read it).

/// One CORS rule, as S3 stores it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CorsRule {
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub expose_headers: Vec<String>,
}

impl CorsRule {
    /// ICA's rule for a console on `origins`: every method the console uses, any header, and
    /// ETag exposed for multipart uploads.
    pub fn console(origins: &[&str]) -> CorsRule {
        CorsRule {
            allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            allowed_methods: ["HEAD", "GET", "PUT", "POST", "DELETE"].map(str::to_owned).to_vec(),
            allowed_headers: vec!["*".to_owned()],
            expose_headers: vec!["ETag".to_owned(), "x-amz-meta-custom-header".to_owned()],
        }
    }
}

/// S3's origin matching: exact, or with one `*` standing for any run of characters.
pub fn origin_matches(pattern: &str, origin: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == origin,
        Some((head, tail)) => {
            origin.len() >= head.len() + tail.len() && origin.starts_with(head) && origin.ends_with(tail)
        }
    }
}

/// Whether `rules` let a browser on `origin` send `method` and read the ETag; the reason when
/// they do not.
pub fn allows_uploads(rules: &[CorsRule], origin: &str, method: &str) -> Result<(), String> {
    let rule = rules.iter().find(|r| {
        r.allowed_origins.iter().any(|o| origin_matches(o, origin))
            && r.allowed_methods.iter().any(|m| m.eq_ignore_ascii_case(method))
    });
    let Some(rule) = rule else {
        return Err(format!("no CORS rule allows {method} from {origin}"));
    };
    if !rule.expose_headers.iter().any(|h| h.eq_ignore_ascii_case("etag")) {
        return Err(format!(
            "the CORS rule for {origin} does not expose the ETag header, which multipart uploads read"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], expose: &[&str]) -> CorsRule {
        let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        CorsRule {
            allowed_origins: owned(origins),
            allowed_methods: owned(methods),
            allowed_headers: owned(&["*"]),
            expose_headers: owned(expose),
        }
    }

    #[test]
    fn origins_and_methods() {
        assert!(origin_matches("https://ica.illumina.com", "https://ica.illumina.com"));
        assert!(origin_matches("https://*.illumina.com", "https://ica.illumina.com"));
        assert!(origin_matches("*", "http://127.0.0.1:8080"));
        assert!(!origin_matches("https://*.illumina.com", "https://illumina.com.evil"));
        let ica = rule(
            &["https://ica.illumina.com"],
            &["HEAD", "GET", "PUT", "POST", "DELETE"],
            &["ETag", "x-amz-meta-custom-header"],
        );
        assert_eq!(allows_uploads(std::slice::from_ref(&ica), "https://ica.illumina.com", "PUT"), Ok(()));
        assert!(allows_uploads(std::slice::from_ref(&ica), "https://other.example", "PUT").is_err());
        assert!(allows_uploads(&[], "https://ica.illumina.com", "PUT").is_err());
        let no_etag = rule(&["*"], &["PUT"], &[]);
        let reason = allows_uploads(&[no_etag], "https://x.example", "PUT").err().unwrap_or_default();
        assert!(reason.contains("ETag"), "{reason}");
        let get_only = rule(&["*"], &["GET"], &["ETag"]);
        assert!(allows_uploads(&[get_only], "https://x.example", "PUT").is_err());
    }
}
