// Migrations are embedded at compile time: rebuild when one changes. Cargo scans a directory given to
// `rerun-if-changed` recursively, so this covers every dialect (`migrations/sqlite`, `migrations/postgres`).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
