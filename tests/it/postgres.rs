//! The PostgreSQL store's test server (`pg_server`): what the PostgreSQL store tests
//! stand on — a real server on 127.0.0.1 that a test starts, uses and stops.

use std::net::TcpStream;

use crate::pg_server::PgServer;

#[test]
fn test_server_answers_sql_over_tcp_and_is_gone_when_dropped() {
    let Some(pg) = PgServer::start() else { return };
    let url = pg.create_database("harness");
    assert!(
        url.ends_with(&format!("127.0.0.1:{}/harness", pg.port())),
        "{url}"
    );
    pg.psql(
        "harness",
        "CREATE TABLE t (n int); INSERT INTO t VALUES (41), (1)",
    );
    assert_eq!(pg.psql("harness", "SELECT sum(n) FROM t"), "42");
    let port = pg.port();
    drop(pg);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server still listens on {port} after drop"
    );
}

#[test]
fn two_test_servers_run_side_by_side_on_their_own_ports() {
    let Some(a) = PgServer::start() else { return };
    let Some(b) = PgServer::start() else { return };
    assert_ne!(a.port(), b.port());
    a.psql("postgres", "CREATE TABLE only_in_a (n int)");
    assert_eq!(
        b.psql(
            "postgres",
            "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"
        ),
        "0"
    );
}
