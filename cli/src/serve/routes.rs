//! Which answer a request gets: a plain function of the method, the request target and the served names.
//! Nothing here touches the filesystem: a name is served only when it is one of the targets' `db` labels.

/// The answer a request gets.
#[derive(Clone, Debug, PartialEq)]
pub enum Route {
    Metrics,
    /// Every database.
    Health,
    /// One database, by its index among the targets.
    HealthOf(usize),
    NotFound,
    /// A known path asked with another method than GET or HEAD.
    MethodNotAllowed,
}

/// The methods every route answers (the `Allow` header of a 405).
pub const ALLOWED: &str = "GET, HEAD";

/// Routes a request: `target` is the request-target as sent (origin form, query string ignored).
pub fn route(method: &str, target: &str, names: &[String]) -> Route {
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    let found = match path {
        "/metrics" => Route::Metrics,
        "/health" => Route::Health,
        _ => match path.strip_prefix("/health/").and_then(percent_decoded) {
            Some(name) => match names.iter().position(|n| *n == name) {
                Some(index) => Route::HealthOf(index),
                None => return Route::NotFound,
            },
            None => return Route::NotFound,
        },
    };
    if method == "GET" || method == "HEAD" {
        found
    } else {
        Route::MethodNotAllowed
    }
}

/// `%XX` sequences decoded to bytes, the result read as UTF-8; None when malformed.
pub fn percent_decoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // from_str_radix alone would take a sign ("%+1").
            let hex = text.get(i + 1..i + 3).filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["shop".into(), "a b/\"ü\"".into()]
    }

    #[test]
    fn known_paths_answer_get_and_head() {
        for method in ["GET", "HEAD"] {
            assert_eq!(route(method, "/metrics", &names()), Route::Metrics);
            assert_eq!(route(method, "/metrics?x=1", &names()), Route::Metrics);
            assert_eq!(route(method, "/health", &names()), Route::Health);
            assert_eq!(route(method, "/health/shop", &names()), Route::HealthOf(0));
        }
    }

    #[test]
    fn a_name_is_percent_decoded_and_must_be_a_target() {
        assert_eq!(route("GET", "/health/a%20b%2F%22%C3%BC%22", &names()), Route::HealthOf(1));
        assert_eq!(route("GET", "/health/nope", &names()), Route::NotFound);
        assert_eq!(route("GET", "/health/", &names()), Route::NotFound);
        assert_eq!(route("GET", "/health/sho%", &names()), Route::NotFound);
        assert_eq!(route("GET", "/health/%ff", &names()), Route::NotFound);
    }

    #[test]
    fn traversal_and_unknown_paths_are_not_found() {
        for target in [
            "/health/..%2f..%2fetc%2fpasswd",
            "/../Cargo.toml",
            "/",
            "",
            "*",
            "/metrics/",
            "/METRICS",
            "http://localhost/metrics",
            "/health/shop/..",
            "//metrics",
        ] {
            assert_eq!(route("GET", target, &names()), Route::NotFound, "{target}");
        }
    }

    #[test]
    fn other_methods_on_known_paths_are_not_allowed() {
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "get"] {
            assert_eq!(route(method, "/metrics", &names()), Route::MethodNotAllowed, "{method}");
            assert_eq!(route(method, "/health/shop", &names()), Route::MethodNotAllowed, "{method}");
        }
        assert_eq!(route("POST", "/nope", &names()), Route::NotFound);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decoded("a%2Fb"), Some("a/b".into()));
        assert_eq!(percent_decoded("%e2%82%ac"), Some("€".into()));
        assert_eq!(percent_decoded("%2"), None);
        assert_eq!(percent_decoded("%zz"), None);
        assert_eq!(percent_decoded("%+1"), None);
    }
}
