// `sqlx::migrate!` embeds the migration folders at compile time; make cargo rebuild this crate
// when a migration is added or edited (the saga adds its own files, numbered from 0100).
fn main() {
    println!("cargo:rerun-if-changed=migrations/sqlite");
    println!("cargo:rerun-if-changed=migrations/postgres");
}
