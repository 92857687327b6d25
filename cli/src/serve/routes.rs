//! Which answer a request gets: a plain function of the method, the request target and the served names.
//! Nothing here touches the filesystem: a name is served only when it is one of the targets' `db` labels, an
//! asset only when it is in the fixed table of vendored files.

/// The answer a request gets.
#[derive(Clone, Debug, PartialEq)]
pub enum Route {
    Metrics,
    /// Every database.
    Health,
    /// One database, by its index among the targets.
    HealthOf(usize),
    /// The dashboard: every database (`GET /`).
    Fleet,
    /// One database's dashboard page, by index.
    Page(usize),
    /// `GET /api/v1/databases`.
    ApiDatabases,
    /// `GET /api/v1/history/<db>`, by index.
    ApiHistory(usize),
    /// A vendored file, by its index in the assets table.
    Asset(usize),
    NotFound,
    /// A known path asked with another method than GET or HEAD.
    MethodNotAllowed,
}

/// The methods every route answers (the `Allow` header of a 405).
pub const ALLOWED: &str = "GET, HEAD";

/// Routes a request: `target` is the request-target as sent (origin form, query string ignored).
pub fn route(method: &str, target: &str, names: &[String]) -> Route {
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    let by_name = |prefix: &str| {
        let name = percent_decoded(path.strip_prefix(prefix)?)?;
        names.iter().position(|n| *n == name)
    };
    let found = match path {
        "/metrics" => Route::Metrics,
        "/health" => Route::Health,
        "/" => Route::Fleet,
        "/api/v1/databases" => Route::ApiDatabases,
        _ => {
            let named = [
                ("/health/", Route::HealthOf as fn(usize) -> Route),
                ("/db/", Route::Page),
                ("/api/v1/history/", Route::ApiHistory),
            ];
            let by_prefix = named.iter().find(|(prefix, _)| path.starts_with(prefix));
            let found = match by_prefix {
                Some((prefix, make)) => by_name(prefix).map(make),
                // Asset names are plain: no decoding, so no `..` or `%2f` can ever reach a lookup.
                None => path.strip_prefix("/assets/").and_then(super::assets::find).map(Route::Asset),
            };
            match found {
                Some(route) => route,
                None => return Route::NotFound,
            }
        }
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
            assert_eq!(route(method, "/", &names()), Route::Fleet);
            assert_eq!(route(method, "/db/shop", &names()), Route::Page(0));
            assert_eq!(route(method, "/api/v1/databases", &names()), Route::ApiDatabases);
            assert_eq!(route(method, "/api/v1/history/a%20b%2F%22%C3%BC%22", &names()), Route::ApiHistory(1));
            assert_eq!(route(method, "/assets/dashboard.js", &names()), Route::Asset(0));
            assert!(matches!(route(method, "/assets/uPlot.iife.min.js?v=1", &names()), Route::Asset(_)));
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
            "",
            "/assets/../Cargo.toml",
            "/assets/..%2fCargo.toml",
            "/assets/",
            "/assets/dashboard.js/",
            "/db/nope",
            "/db/",
            "/api/v1/history/nope",
            "/api/v1/databases/",
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
            assert_eq!(route(method, "/", &names()), Route::MethodNotAllowed, "{method}");
            assert_eq!(route(method, "/assets/dashboard.css", &names()), Route::MethodNotAllowed, "{method}");
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
