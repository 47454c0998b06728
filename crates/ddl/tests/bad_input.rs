//! Bad input: garbage, injections hidden in a second statement, tables outside the
//! pipeline, oversized scripts, and random input that must never panic.

mod common;

use common::pg_catalog;
use lockstep_ddl::*;

fn refusal(sql: &str) -> Refused {
    match classify(sql, &pg_catalog()) {
        Ok(c) => panic!("{sql:?} accepted: {:?}", c.statements),
        Err(e) => e,
    }
}

#[test]
fn injection_in_a_second_statement_refuses_the_whole_script() {
    for (sql, kind) in [
        (
            "ALTER TABLE t ADD c int; DROP TABLE accounts",
            RefusalKind::OutsidePipeline,
        ),
        (
            "ALTER TABLE orders ADD COLUMN c int; DROP TABLE accounts",
            RefusalKind::OutsidePipeline,
        ),
        (
            "ALTER TABLE orders ADD COLUMN c int; DELETE FROM orders",
            RefusalKind::NotDdl,
        ),
        (
            "ALTER TABLE orders ADD COLUMN c int; COMMIT; DROP TABLE accounts",
            RefusalKind::TransactionControl,
        ),
        (
            "ALTER TABLE orders ADD COLUMN c int;DROP TABLE customers CASCADE",
            RefusalKind::Unsafe,
        ),
        (
            "ALTER TABLE orders ADD COLUMN c int;\nGRANT ALL ON orders TO public",
            RefusalKind::Unsupported,
        ),
    ] {
        let e = refusal(sql);
        assert!(
            e.refusals
                .iter()
                .any(|r| r.kind == kind && r.statement.is_some_and(|n| n > 0)),
            "{sql}: {e}"
        );
        assert!(e.to_string().contains("nothing applied"), "{e}");
    }
    // Both problems of a script are reported, each with its statement.
    let e = refusal("ALTER TABLE t ADD c int; DROP TABLE accounts");
    assert_eq!(e.refusals.len(), 2, "{e}");
    assert_eq!(e.refusals[0].statement, Some(0));
    assert_eq!(e.refusals[1].statement, Some(1));
    assert_eq!(e.refusals[1].sql.as_deref(), Some("DROP TABLE accounts"));
    assert_eq!(e.refusals[1].kind, RefusalKind::OutsidePipeline);
    // The valid first statement alone is accepted: the refusal is the second statement's.
    assert!(classify("ALTER TABLE orders ADD COLUMN c int", &pg_catalog()).is_ok());
}

#[test]
fn text_that_only_looks_like_a_second_statement_is_one_statement() {
    let catalog = pg_catalog();
    for sql in [
        "ALTER TABLE orders ADD COLUMN c int /* ; DROP TABLE accounts */",
        "ALTER TABLE orders ADD COLUMN c int -- ; DROP TABLE accounts",
        "ALTER TABLE orders ADD COLUMN c text DEFAULT '; DROP TABLE accounts; --'",
        "ALTER TABLE orders ADD COLUMN c text DEFAULT $$; DROP TABLE accounts;$$",
        "ALTER TABLE orders ADD COLUMN \"c; DROP TABLE accounts\" int",
    ] {
        let c = classify(sql, &catalog).unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(c.statements.len(), 1, "{sql}");
        assert_eq!(c.statements[0].changes[0].change.class_name(), "ADD COLUMN");
    }
}

#[test]
fn garbage_is_a_syntax_refusal() {
    for sql in [
        "this is not sql",
        "ALTER TABLE orders ADD COLUMN",
        "ALTER TABLE ünïcödé 😀 ADD",
        "ALTER TABLE orders ADD COLUMN c int DEFAULT 'unterminated",
        "CREATE TABLE (",
        "))))",
        "\u{feff}\u{200b}",
        "ALTER TABLE orders ADD COLUMN c int\0",
    ] {
        let e = refusal(sql);
        assert_eq!(e.refusals[0].kind, RefusalKind::Syntax, "{sql:?}: {e}");
    }
    // A syntax error is located in its statement.
    let e = refusal("ALTER TABLE orders ADD COLUMN a int; ALTER TABLE orders ADD COLUMN");
    assert_eq!(e.refusals[0].statement, Some(1), "{e}");
}

#[test]
fn empty_scripts_are_refused() {
    for sql in [
        "",
        "   ",
        ";",
        " ; ;; ",
        "-- only a comment",
        "/* nothing */",
    ] {
        let e = refusal(sql);
        assert_eq!(e.refusals[0].kind, RefusalKind::Empty, "{sql:?}: {e}");
    }
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let big = format!(
        "COMMENT ON TABLE orders IS '{}'",
        "x".repeat(MAX_SCRIPT_BYTES)
    );
    let e = refusal(&big);
    assert_eq!(e.refusals[0].kind, RefusalKind::TooLarge);
    assert!(e.refusals[0].message.contains("split it"));
    let many = "COMMENT ON TABLE orders IS 'x';".repeat(MAX_STATEMENTS + 1);
    let e = refusal(&many);
    assert_eq!(e.refusals[0].kind, RefusalKind::TooLarge);
    // Deeply nested expressions are refused by the parser's own limits, not by a crash.
    let deep = format!(
        "ALTER TABLE orders ADD COLUMN c int DEFAULT {}1{}",
        "(".repeat(20_000),
        ")".repeat(20_000)
    );
    assert!(classify(&deep, &pg_catalog()).is_err());
    let deep = format!(
        "ALTER TABLE orders ADD COLUMN c int DEFAULT {}1",
        "-".repeat(50_000)
    );
    let _ = classify(&deep, &pg_catalog());
}

#[test]
fn refusal_messages_are_short_and_name_the_statement() {
    let long = format!("DROP TABLE accounts /* {} */", "y".repeat(10_000));
    let e = refusal(&long);
    let sql = e.refusals[0].sql.as_deref().unwrap();
    assert!(sql.chars().count() <= 161, "{}", sql.len());
    assert!(e.to_string().starts_with(
        "DDL refused, nothing applied (1 problem):\n  - statement 1 (DROP TABLE accounts"
    ));
}

/// Deterministic pseudo-random generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const WORDS: &[&str] = &[
    "ALTER",
    "TABLE",
    "orders",
    "customers",
    "ADD",
    "DROP",
    "COLUMN",
    "CONSTRAINT",
    "PRIMARY",
    "KEY",
    "INDEX",
    "CONCURRENTLY",
    "CREATE",
    "VIEW",
    "AS",
    "SELECT",
    "FROM",
    "RENAME",
    "TO",
    "TYPE",
    "USING",
    "SET",
    "NOT",
    "NULL",
    "DEFAULT",
    "REPLICA",
    "IDENTITY",
    "FULL",
    "NOTHING",
    "COMMENT",
    "ON",
    "IS",
    "TRUNCATE",
    "CASCADE",
    "CHECK",
    "UNIQUE",
    "REFERENCES",
    "VALIDATE",
    "int",
    "bigint",
    "text",
    "varchar(3)",
    "numeric(5,2)",
    "note",
    "id",
    "status",
    "qty",
    "(",
    ")",
    ",",
    ";",
    "'x'",
    "$$",
    "--",
    "/*",
    "*/",
    "\"",
    "::",
    "1",
    "-",
    "now()",
    "public.",
    "app.items",
    "BEGIN",
    "COMMIT",
    "WITH",
    "IF",
    "EXISTS",
    "ONLY",
    "\n",
    "😀",
    "\0",
    "\\",
];

fn random_script(rng: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..rng.below(40) {
        match rng.below(10) {
            0 => {
                // Raw bytes, made valid UTF-8 where they are not.
                let bytes: Vec<u8> = (0..rng.below(8)).map(|_| rng.next() as u8).collect();
                s.push_str(&String::from_utf8_lossy(&bytes));
            }
            _ => s.push_str(WORDS[rng.below(WORDS.len())]),
        }
        if rng.below(3) > 0 {
            s.push(' ');
        }
    }
    s
}

/// Mutate a valid statement: drop, duplicate or replace a token.
fn mutate(rng: &mut Rng, base: &str) -> String {
    let mut tokens: Vec<String> = base.split(' ').map(str::to_string).collect();
    for _ in 0..1 + rng.below(3) {
        if tokens.is_empty() {
            break;
        }
        let i = rng.below(tokens.len());
        match rng.below(3) {
            0 => {
                tokens.remove(i);
            }
            1 => {
                let t = tokens[i].clone();
                tokens.insert(i, t);
            }
            _ => tokens[i] = WORDS[rng.below(WORDS.len())].to_string(),
        }
    }
    tokens.join(" ")
}

const VALID: &[&str] = &[
    "ALTER TABLE orders ADD COLUMN discount numeric(10,2) DEFAULT 0",
    "ALTER TABLE orders RENAME COLUMN note TO remark",
    "ALTER TABLE orders ALTER COLUMN note TYPE varchar(50)",
    "CREATE TABLE refunds (id bigint PRIMARY KEY, amount numeric(10,2))",
    "CREATE INDEX CONCURRENTLY orders_status_idx ON orders (status)",
    "ALTER TABLE orders DROP CONSTRAINT orders_pkey, ADD PRIMARY KEY (id, customer_id)",
    "CREATE VIEW v AS SELECT id FROM orders WHERE qty > 1",
    "COMMENT ON COLUMN orders.note IS 'x'",
    "TRUNCATE orders, customers",
    "ALTER TABLE orders REPLICA IDENTITY FULL",
];

/// No input makes the classifier panic: random token soup, random bytes and mutations of
/// valid statements, for both engines. (The cargo-fuzz target in `fuzz/` does the same
/// with coverage guidance, on nightly.)
#[test]
fn random_input_never_panics() {
    let pg = pg_catalog();
    let mut my = pg.clone();
    my.engine = Engine::Mysql;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut accepted = 0;
    for i in 0..4_000 {
        let script = if i % 2 == 0 {
            random_script(&mut rng)
        } else {
            let base = VALID[rng.below(VALID.len())];
            mutate(&mut rng, base)
        };
        for catalog in [&pg, &my] {
            match classify(&script, catalog) {
                Ok(c) => {
                    accepted += 1;
                    assert!(!c.statements.is_empty());
                    // Whatever is accepted serialises.
                    serde_json::to_string(&c).unwrap();
                }
                Err(e) => {
                    assert!(!e.refusals.is_empty());
                    assert!(e.refusals.iter().all(|r| !r.message.is_empty()));
                }
            }
        }
    }
    // The mutations keep some statements valid: the test exercises acceptance too.
    assert!(accepted > 50, "only {accepted} accepted");
}
