//! The authorization matrix: every route of every surface, called as every principal (anonymous, a reader,
//! a member and the owner in project A, a member of project B, the admin), and for image routes on every
//! kind of image (private, public, community, shared pending/accepted/rejected, marketplace, deactivated,
//! deleted). Each cell states the expected status class; a call that is refused must leave its target
//! unchanged. The route list is compared with the routes the routers register, so a new route needs a row.
//!
//! The expectations follow Glance's default policy and the IMS rules: no token is 401; an image the caller
//! may not see is 404 (never 403); a visible image the caller may not change is 403; readers only look;
//! publishing public images, deactivation and the platform surfaces (identity, admin, audit) are for admins.

mod glance;
mod ims;
mod metadefs;
mod platform;
mod routes;
mod rules;
mod world;

use std::collections::BTreeSet;

use reqwest::Method;

use world::{Principal, Variant, World, PRINCIPALS, VARIANTS};

/// A request body; `<slot>`s in JSON are filled like those of the path.
pub enum Body {
    Empty,
    Json(&'static str),
    JsonPatch(&'static str),
    Octets(&'static [u8]),
}

/// The expected outcomes of a row.
pub enum Expect {
    /// One class per principal, in `PRINCIPALS` order, e.g. `"401 403 2xx 2xx 2xx 2xx"`.
    Roles(&'static str),
    /// The row acts on `<image>`: one line per variant (in `VARIANTS` order) of classes per principal.
    Images(&'static rules::ImageRule),
}

/// What a successful call does to the resources named in its path and body.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Reads only.
    Reads,
    /// Changes something, but the resources stay usable by the next cells.
    Changes,
    /// Removes or transforms them: the next cell gets new ones.
    Consumes,
}

pub struct Row {
    pub method: Method,
    /// The route as the router registers it.
    pub route: &'static str,
    /// The path called, with `<slot>`s (and `<image>` for image rows).
    pub path: &'static str,
    pub body: Body,
    pub expect: Expect,
    pub effect: Effect,
    /// Admin `GET` paths (with `<slot>`s) whose answers a refused call must leave unchanged. Image rows
    /// always compare the image record (or its recycle-bin entry) and its members.
    pub probes: &'static [&'static str],
}

impl Row {
    pub fn new(method: Method, route: &'static str, path: &'static str, expect: Expect) -> Row {
        Row { method, route, path, body: Body::Empty, expect, effect: Effect::Reads, probes: &[] }
    }
    pub fn body(mut self, body: Body) -> Row {
        self.body = body;
        self
    }
    pub fn changes(mut self, probes: &'static [&'static str]) -> Row {
        self.effect = Effect::Changes;
        self.probes = probes;
        self
    }
    pub fn consumes(mut self, probes: &'static [&'static str]) -> Row {
        self.effect = Effect::Consumes;
        self.probes = probes;
        self
    }
}

/// A status class: `2xx` or an exact code.
fn matches_class(class: &str, status: u16) -> bool {
    match class {
        "2xx" => (200..300).contains(&status),
        "3xx" => (300..400).contains(&status),
        code => code.parse::<u16>().expect("a status class") == status,
    }
}

fn classes(line: &str) -> Vec<&str> {
    let classes: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(classes.len(), PRINCIPALS.len(), "expectation line {line:?} needs one class per principal");
    classes
}

/// Routes registered but left out of the matrix, with the reason.
const NOT_IN_MATRIX: &[(&str, &str, &str)] = &[];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_as_every_principal() {
    let rows: Vec<Row> = [glance::rows(), metadefs::rows(), ims::rows(), platform::rows()].into_iter().flatten().collect();
    routes::check_coverage(&rows, NOT_IN_MATRIX);

    let mut world = World::set_up().await;
    let mut failures = Vec::new();
    let mut cells = 0usize;
    for row in &rows {
        match &row.expect {
            Expect::Roles(line) => {
                for (principal, class) in PRINCIPALS.iter().zip(classes(line)) {
                    cells += 1;
                    if let Some(failure) = run_cell(&mut world, row, *principal, None, class).await {
                        failures.push(failure);
                    }
                }
            }
            Expect::Images(rule) => {
                for (variant, line) in VARIANTS.iter().zip(rule.iter()) {
                    for (principal, class) in PRINCIPALS.iter().zip(classes(line)) {
                        cells += 1;
                        if let Some(failure) = run_cell(&mut world, row, *principal, Some(*variant), class).await {
                            failures.push(failure);
                        }
                    }
                }
            }
        }
    }
    let endpoints: BTreeSet<(String, &str)> = rows.iter().map(|r| (r.method.to_string(), r.route)).collect();
    println!("authorization-matrix: endpoints={} roles={} cells={cells}", endpoints.len(), PRINCIPALS.len());
    assert!(failures.is_empty(), "{} of {cells} cells differ:\n{}", failures.len(), failures.join("\n"));
}

/// Runs one cell; `Some(description)` when it differs from `class` or a refused call changed state.
async fn run_cell(world: &mut World, row: &Row, principal: Principal, variant: Option<Variant>, class: &str) -> Option<String> {
    let mut names = world::slot_names(row.path);
    if let Body::Json(t) | Body::JsonPatch(t) = row.body {
        names.extend(world::slot_names(t));
    }
    for probe in row.probes {
        names.extend(world::slot_names(probe));
    }
    let mut values = std::collections::HashMap::new();
    for name in &names {
        let value = match (name.as_str(), variant) {
            ("image", Some(variant)) => world.image(variant).await,
            ("my_project", _) => world.project_of(principal),
            ("unique", _) => world.unique(),
            _ => world.slot(name).await,
        };
        values.insert(name.clone(), value);
    }
    let lookup = |name: &str| values.get(name).cloned().unwrap_or_else(|| panic!("slot <{name}> not resolved"));
    let mut probes: Vec<String> = row.probes.iter().map(|p| world::fill(p, &lookup)).collect();
    if let Some(variant) = variant {
        let image = &values["image"];
        probes.push(match variant {
            Variant::Deleted => format!("/v1/recycle-bin/images/{image}"),
            _ => format!("/v2/images/{image}"),
        });
        probes.push(format!("/v2/images/{image}/members"));
    }
    let mutating = row.effect != Effect::Reads;
    let mut before = Vec::new();
    if mutating {
        for probe in &probes {
            before.push(world.snapshot(probe).await);
        }
    }
    let path = world::fill(row.path, &lookup);
    let answer = world.call(principal, row.method.clone(), &path, &row.body, &lookup).await;
    let cell = format!(
        "{} {} as {principal:?}{}",
        row.method,
        row.route,
        variant.map(|v| format!(" on {v:?}")).unwrap_or_default()
    );
    let mut failure = None;
    if !matches_class(class, answer.status) {
        failure = Some(format!("  {cell}: expected {class}, got {} {}", answer.status, error_text(&answer.body)));
    }
    let succeeded = (200..300).contains(&answer.status);
    if mutating && !succeeded {
        for (probe, before) in probes.iter().zip(before) {
            let after = world.snapshot(probe).await;
            if after != before {
                let leak = format!("  {cell}: refused with {} but changed {probe}", answer.status);
                failure = Some(failure.map_or(leak.clone(), |f| format!("{f}\n{leak}")));
            }
        }
    }
    if succeeded && row.effect == Effect::Consumes {
        world.invalidate(&names);
        if let Some(variant) = variant {
            world.invalidate_image(variant);
        }
    }
    failure
}

/// The message of an error body, for failure reports.
fn error_text(body: &serde_json::Value) -> String {
    let text = body.to_string();
    text.chars().take(160).collect()
}
