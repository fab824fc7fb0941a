//! The one redaction helper: credentials and query strings (which often
//! carry signed tokens) never appear in anything Strata prints or logs.

/// Removes user:password and the query from a URL.
pub fn url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if !u.username().is_empty() || u.password().is_some() {
                let _ = u.set_username("***");
                let _ = u.set_password(None);
            }
            if u.query().is_some() {
                u.set_query(Some("***"));
            }
            u.to_string()
        }
        Err(_) => url.to_string(),
    }
}

/// Redacts every URL inside a text (error messages quote URLs).
pub fn urls_in(s: &str) -> String {
    s.split(' ')
        .map(|w| {
            let t = w.trim_matches(|c| c == '(' || c == ')' || c == ',');
            if t.starts_with("http://") || t.starts_with("https://") {
                w.replace(t, &url(t))
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The text of an error and its causes, URLs redacted. HTTP libraries wrap
/// the interesting cause in generic layers ("error sending request for url
/// (…)", "client error (Connect)"); the operation already names the URL, so
/// only what says why is kept.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let generic = |m: &str| {
        m.starts_with("error sending request for url")
            || m.starts_with("client error (")
            || m.starts_with("error decoding response body")
            || m.starts_with("request or response body error")
    };
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cur {
        let m = c.to_string();
        if !generic(&m) && !parts.iter().any(|p| p.contains(&m)) {
            parts.push(m);
        }
        cur = c.source();
    }
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    urls_in(&parts.join(": "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_userinfo_and_query() {
        let r = url("https://user:s3cret@example.com/a.tar?token=abc");
        assert!(!r.contains("s3cret") && !r.contains("abc") && !r.contains("user:"), "{r}");
        assert_eq!(url("https://example.com/a"), "https://example.com/a");
    }

    #[test]
    fn urls_in_error_text_lose_their_queries() {
        let s = urls_in(
            "error sending request for url (http://127.0.0.1:5000/v2/a/blobs/uploads/x?_state=SECRET&digest=sha256:1)",
        );
        assert!(!s.contains("SECRET"), "{s}");
        assert!(s.contains("http://127.0.0.1:5000/v2/a/blobs/uploads/x"), "{s}");
    }
}
