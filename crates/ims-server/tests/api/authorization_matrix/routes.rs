//! The routes the routers register, read from the server's source, against the rows of the matrix.

use std::collections::BTreeSet;
use std::path::Path;

use super::Row;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Fails unless every `(method, route)` registered in `src/` has a row or is in `left_out`, and every row
/// and every left-out route is registered.
pub fn check_coverage(rows: &[Row], left_out: &[(&str, &str, &str)]) {
    let registered = registered_routes(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(registered.len() > 100, "found only {} routes in the source; is the parser broken?", registered.len());
    let mut covered: BTreeSet<(String, String)> =
        rows.iter().map(|r| (r.method.as_str().to_string(), r.route.to_string())).collect();
    for (method, route, reason) in left_out {
        assert!(!reason.is_empty(), "{method} {route} is left out without a reason");
        covered.insert((method.to_string(), route.to_string()));
    }
    let missing: Vec<_> = registered.difference(&covered).map(|(m, r)| format!("  {m} {r}")).collect();
    let stale: Vec<_> = covered.difference(&registered).map(|(m, r)| format!("  {m} {r}")).collect();
    assert!(missing.is_empty(), "routes without a row in the authorization matrix:\n{}", missing.join("\n"));
    assert!(stale.is_empty(), "matrix rows for routes that are not registered:\n{}", stale.join("\n"));
}

/// Every `(METHOD, template)` of the `.route("template", get(..).post(..))` calls in the `.rs` files under
/// `dir`.
pub fn registered_routes(dir: &Path) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    let mut files = vec![dir.to_path_buf()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if path.extension().is_some_and(|e| e == "rs") {
            routes.extend(routes_in(&std::fs::read_to_string(&path).unwrap()));
        }
    }
    routes
}

/// The routes of one source file.
fn routes_in(source: &str) -> Vec<(String, String)> {
    let mut routes = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find(".route(") {
        let call = &rest[at + ".route(".len()..];
        let end = closing_paren(call);
        let arguments = &call[..end];
        rest = &call[end..];
        let Some(open) = arguments.find('"') else { continue };
        let Some(close) = arguments[open + 1..].find('"') else { continue };
        let template = &arguments[open + 1..open + 1 + close];
        let handlers = &arguments[open + 2 + close..];
        for method in methods_in(handlers) {
            routes.push((method.to_uppercase(), template.to_string()));
        }
    }
    routes
}

/// The index of the `)` that closes the call whose arguments start `text`.
fn closing_paren(text: &str) -> usize {
    let mut depth = 1;
    let mut in_string = false;
    let mut previous = ' ';
    for (i, c) in text.char_indices() {
        match c {
            '"' if previous != '\\' => in_string = !in_string,
            '(' if !in_string => depth += 1,
            ')' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
        previous = c;
    }
    panic!("an unclosed .route( call")
}

/// The method routers (`get(`, `.post(`, `routing::delete(`) named in a route's handler expression,
/// skipping closures and string literals.
fn methods_in(handlers: &str) -> Vec<&'static str> {
    let mut found = Vec::new();
    let bytes = handlers.as_bytes();
    let mut depth = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' => depth += 1,
            b')' => depth -= 1,
            _ if depth == 0 => {
                let word_start = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
                if word_start {
                    for method in METHODS {
                        if bytes[i..].starts_with(method.as_bytes()) && bytes.get(i + method.len()) == Some(&b'(') {
                            found.push(method);
                        }
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    found
}

#[test]
fn the_route_parser_reads_chained_multi_line_and_layered_routes() {
    let source = r#"
        Router::new()
            .route("/a/{id}", get(a::show).patch(a::update).delete(a::delete))
            .route(
                "/b",
                post(b::create).layer(DefaultBodyLimit::max(10)),
            )
            .route("/c", get(|| async { "get(not a route)" }))
            .route("/d", axum::routing::delete(d::delete_from_store))
    "#;
    let routes = routes_in(source);
    let expected = [("GET", "/a/{id}"), ("PATCH", "/a/{id}"), ("DELETE", "/a/{id}"), ("POST", "/b"), ("GET", "/c"), ("DELETE", "/d")];
    assert_eq!(routes, expected.map(|(m, r)| (m.to_string(), r.to_string())));
}
