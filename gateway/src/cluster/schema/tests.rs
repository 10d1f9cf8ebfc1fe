use std::sync::{Arc, Barrier};

use testkit::PgSchema;

use super::*;

fn tables(client: &mut Client, schema: &str) -> Vec<String> {
    client
        .query(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = $1 ORDER BY table_name",
            &[&schema],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn a_fresh_schema_gets_every_table_and_the_current_version() {
    let schema = PgSchema::new("migrate_fresh");
    let mut client = schema.client();
    let done = migrate(&mut client).unwrap();
    assert_eq!(
        done,
        Migrated {
            from: 0,
            to: SCHEMA_VERSION
        }
    );
    assert_eq!(
        tables(&mut client, schema.name()),
        [
            "flows",
            "idempotency",
            "openclaw_schema_migrations",
            "outbox",
            "tasks"
        ]
    );
}

#[test]
fn migrating_again_changes_nothing() {
    let schema = PgSchema::new("migrate_twice");
    let mut client = schema.client();
    migrate(&mut client).unwrap();
    client
        .execute(
            "INSERT INTO idempotency VALUES ('s', 'k', 'f', 200, '\\x00', 1)",
            &[],
        )
        .unwrap();
    let again = migrate(&mut client).unwrap();
    assert_eq!(
        again,
        Migrated {
            from: SCHEMA_VERSION,
            to: SCHEMA_VERSION
        }
    );
    let rows: i64 = client
        .query_one("SELECT count(*) FROM idempotency", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 1, "a second migration must not touch data");
    let versions: i64 = client
        .query_one("SELECT count(*) FROM openclaw_schema_migrations", &[])
        .unwrap()
        .get(0);
    assert_eq!(versions, SCHEMA_VERSION);
}

#[test]
fn gateways_starting_together_both_succeed_and_migrate_once() {
    let schema = PgSchema::new("migrate_race");
    let nodes = 4;
    let barrier = Arc::new(Barrier::new(nodes));
    let handles: Vec<_> = (0..nodes)
        .map(|_| {
            let (url, barrier) = (schema.url(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let mut client: Client = url
                    .parse::<postgres::Config>()
                    .unwrap()
                    .connect(postgres::NoTls)
                    .unwrap();
                barrier.wait();
                migrate(&mut client)
            })
        })
        .collect();
    let results: Vec<Migrated> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    let fresh = results.iter().filter(|m| m.from == 0).count();
    assert_eq!(
        fresh, 1,
        "exactly one node applies the migrations: {results:?}"
    );
    assert!(results.iter().all(|m| m.to == SCHEMA_VERSION));
    let mut client = schema.client();
    let version: i64 = client
        .query_one("SELECT max(version) FROM openclaw_schema_migrations", &[])
        .unwrap()
        .get(0);
    assert_eq!(version, SCHEMA_VERSION);
}

#[test]
fn a_schema_newer_than_this_build_is_refused_untouched() {
    let schema = PgSchema::new("migrate_newer");
    let mut client = schema.client();
    migrate(&mut client).unwrap();
    client
        .execute(
            "INSERT INTO openclaw_schema_migrations (version) VALUES ($1)",
            &[&(SCHEMA_VERSION + 1)],
        )
        .unwrap();
    let err = migrate(&mut client).unwrap_err().to_string();
    assert!(err.contains("newer than this build supports"), "{err}");
}

#[test]
fn a_search_path_without_an_existing_schema_is_a_clear_error() {
    let url = format!(
        "{}?options=-c%20search_path%3Dno_such_schema_here",
        testkit::postgres_url()
    );
    let mut client = url
        .parse::<postgres::Config>()
        .unwrap()
        .connect(postgres::NoTls)
        .unwrap();
    let err = migrate(&mut client).unwrap_err().to_string();
    assert!(
        err.contains("no schema of the connection's search_path exists"),
        "{err}"
    );
}
