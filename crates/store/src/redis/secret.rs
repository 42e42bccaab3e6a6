//! Keeps a store URL's password (Redis or PostgreSQL) out of every error message the engine produces.

/// The password part of `scheme://user:password@host/...`, if any.
pub(crate) fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (userinfo, _) = authority.rsplit_once('@')?;
    let password = userinfo.split_once(':').map_or(userinfo, |(_, p)| p);
    (!password.is_empty()).then_some(password)
}

/// Masks `secret` (raw and percent-decoded) wherever it appears in `msg`.
pub(crate) fn scrub_secret(msg: String, secret: Option<&str>) -> String {
    let Some(secret) = secret else { return msg };
    let mut out = msg.replace(secret, "***");
    let decoded = percent_decode(secret);
    if !decoded.is_empty() && decoded != secret {
        out = out.replace(&decoded, "***");
    }
    out
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_masks_passwords() {
        assert_eq!(url_password("redis://:pw@h:1/0"), Some("pw"));
        assert_eq!(url_password("rediss://user:p%40ss@h/0?x=1"), Some("p%40ss"));
        assert_eq!(url_password("redis://h:6379/0"), None);
        assert_eq!(url_password("redis://user@h/0"), Some("user"));
        let msg = scrub_secret("auth p@ss / p%40ss failed".into(), Some("p%40ss"));
        assert_eq!(msg, "auth *** / *** failed");
        assert_eq!(scrub_secret("x".into(), None), "x");
    }
}
