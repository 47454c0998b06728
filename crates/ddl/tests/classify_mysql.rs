//! MySQL / MariaDB DDL (sqlparser, MySQL dialect): the same classes and rules.

use lockstep_ddl::RiskLevel::*;
use lockstep_ddl::Strategy::*;
use lockstep_ddl::*;

fn my_catalog() -> Catalog {
    let col = |name: &str, data_type: SqlType, nullable: bool| Column {
        name: name.into(),
        data_type,
        nullable,
        default: None,
    };
    let mut orders = TableSchema::new(
        QualifiedName::new("shop", "orders"),
        vec![
            col("id", SqlType::int(8), false),
            col("note", SqlType::Varchar { length: Some(20) }, true),
            Column {
                default: Some(DefaultValue {
                    sql: "0".into(),
                    constant: Some(Literal::Number("0".into())),
                    identity: false,
                }),
                ..col("qty", SqlType::int(4), false)
            },
            col(
                "amount",
                SqlType::Decimal {
                    precision: Some(10),
                    scale: Some(2),
                },
                true,
            ),
        ],
        &["id"],
    );
    orders.primary_key_name = Some("PRIMARY".into());
    orders.indexes = vec![IndexInfo {
        name: "idx_note".into(),
        columns: vec!["note".into()],
        unique: false,
    }];
    orders.constraints = vec![ConstraintInfo {
        name: "uq_amount".into(),
        kind: ConstraintKind::Unique,
    }];
    orders.rows = Some(10);
    let mut c = Catalog::new(Engine::Mysql, &["shop"]).with_table(orders);
    c.outside = vec![QualifiedName::new("shop", "accounts")];
    c
}

fn classes(s: &Statement) -> Vec<&'static str> {
    s.changes.iter().map(|c| c.change.class_name()).collect()
}

#[test]
fn mysql_classes() {
    let catalog = my_catalog();
    let cases: &[(&str, &[&str], RiskLevel, Strategy)] = &[
        (
            "ALTER TABLE orders ADD COLUMN c int",
            &["ADD COLUMN"],
            L2,
            TargetFirst,
        ),
        (
            "ALTER TABLE orders ADD COLUMN c varchar(10) NOT NULL DEFAULT 'x' AFTER note",
            &["ADD COLUMN"],
            L2,
            TargetFirst,
        ),
        (
            "ALTER TABLE orders ADD COLUMN ts datetime(6) DEFAULT CURRENT_TIMESTAMP(6)",
            &["ADD COLUMN"],
            L2,
            ExpandContract,
        ),
        (
            "ALTER TABLE Orders ADD COLUMN x int",
            &["ADD COLUMN"],
            L2,
            TargetFirst,
        ),
        (
            "ALTER TABLE shop.orders DROP COLUMN note",
            &["DROP COLUMN"],
            L2,
            ExpandContract,
        ),
        (
            "ALTER TABLE orders MODIFY COLUMN note varchar(50)",
            &["ALTER COLUMN TYPE"],
            L2,
            TargetFirst,
        ),
        (
            "ALTER TABLE orders MODIFY note varchar(10)",
            &["ALTER COLUMN TYPE"],
            L1,
            ExpandContract,
        ),
        (
            "ALTER TABLE orders MODIFY qty bigint NOT NULL DEFAULT 0",
            &["ALTER COLUMN TYPE"],
            L2,
            TargetFirst,
        ),
        (
            "ALTER TABLE orders MODIFY qty int",
            &["DROP NOT NULL", "DROP DEFAULT"],
            L2,
            TargetFirst,
        ),
        (
            "ALTER TABLE orders CHANGE note remark varchar(20)",
            &["RENAME COLUMN"],
            L2,
            Boundary,
        ),
        (
            "ALTER TABLE orders RENAME COLUMN note TO remark",
            &["RENAME COLUMN"],
            L2,
            Boundary,
        ),
        (
            "ALTER TABLE orders ALTER COLUMN qty SET DEFAULT 5",
            &["SET DEFAULT"],
            L0,
            TargetFirst,
        ),
        (
            "ALTER TABLE orders ALTER COLUMN qty DROP DEFAULT",
            &["DROP DEFAULT"],
            L0,
            TargetFirst,
        ),
        (
            "RENAME TABLE orders TO orders2",
            &["RENAME TABLE"],
            L3,
            RenameTable,
        ),
        (
            "ALTER TABLE orders RENAME TO orders2",
            &["RENAME TABLE"],
            L3,
            RenameTable,
        ),
        (
            "CREATE TABLE t (id bigint AUTO_INCREMENT PRIMARY KEY, v text, ts timestamp(3) NULL)",
            &["CREATE TABLE"],
            L1,
            CreateTable,
        ),
        (
            "CREATE TABLE t (id int NOT NULL, CONSTRAINT pk PRIMARY KEY (id))",
            &["CREATE TABLE"],
            L1,
            CreateTable,
        ),
        ("DROP TABLE orders", &["DROP TABLE"], L1, DropTable),
        ("TRUNCATE TABLE orders", &["TRUNCATE"], L1, Truncate),
        (
            "CREATE INDEX idx_amount ON orders (amount)",
            &["CREATE INDEX"],
            L0,
            TargetFirst,
        ),
        (
            "DROP INDEX idx_note ON orders",
            &["DROP INDEX"],
            L0,
            TargetFirst,
        ),
        (
            "ALTER TABLE orders ADD INDEX idx_qty (qty)",
            &["CREATE INDEX"],
            L0,
            TargetFirst,
        ),
        (
            "ALTER TABLE orders DROP INDEX idx_note",
            &["DROP INDEX"],
            L0,
            TargetFirst,
        ),
        (
            "ALTER TABLE orders DROP INDEX uq_amount",
            &["DROP CONSTRAINT"],
            L0,
            SourceOnly,
        ),
        (
            "ALTER TABLE orders DROP PRIMARY KEY, ADD PRIMARY KEY (id, qty)",
            &["DROP PRIMARY KEY", "ADD PRIMARY KEY"],
            L3,
            KeyChange,
        ),
        (
            "ALTER TABLE orders ADD CONSTRAINT chk_qty CHECK (qty >= 0)",
            &["ADD CONSTRAINT"],
            L0,
            TargetFirst,
        ),
        (
            "ALTER TABLE orders ADD CONSTRAINT uq_note UNIQUE (note)",
            &["ADD CONSTRAINT"],
            L0,
            SourceOnly,
        ),
        (
            "ALTER TABLE orders ADD COLUMN c int, ALGORITHM=INPLACE, LOCK=NONE",
            &["ADD COLUMN"],
            L2,
            TargetFirst,
        ),
    ];
    let mut failures = Vec::new();
    for (sql, want, risk, strategy) in cases {
        match classify(sql, &catalog) {
            Ok(c) => {
                let s = &c.statements[0];
                if classes(s) != *want || s.risk.level != *risk || s.strategy != *strategy {
                    failures.push(format!(
                        "{sql}: got {:?} {} {}",
                        classes(s),
                        s.risk.level,
                        s.strategy
                    ));
                }
            }
            Err(e) => failures.push(format!("{sql}: refused: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn mysql_refusals() {
    let catalog = my_catalog();
    use RefusalKind::*;
    for (sql, kind) in [
        (
            "ALTER TABLE orders ADD COLUMN c int /*!, DROP COLUMN note */",
            Unsafe,
        ),
        (
            "ALTER TABLE orders ADD COLUMN c int /*M!100000 , DROP COLUMN note */",
            Unsafe,
        ),
        (
            "ALTER TABLE orders CHANGE note remark varchar(50)",
            MixedStrategies,
        ),
        ("ALTER TABLE orders DROP PRIMARY KEY", MissingPrimaryKey),
        ("CREATE TABLE t (id int, v text)", MissingPrimaryKey),
        (
            "CREATE TABLE t (id int PRIMARY KEY, KEY k (id))",
            Unsupported,
        ),
        ("CREATE TEMPORARY TABLE t (id int PRIMARY KEY)", Unsupported),
        ("CREATE VIEW v AS SELECT 1", Unsupported),
        ("START TRANSACTION", TransactionControl),
        ("DELETE FROM orders", NotDdl),
        ("DROP TABLE accounts", OutsidePipeline),
        ("RENAME TABLE orders TO other.orders", Unsupported),
        ("ALTER TABLE orders ADD COLUMN note int", AlreadyExists),
        ("ALTER TABLE orders MODIFY note varchar(20)", Unsupported),
        ("this is not sql", Syntax),
        ("DROP TABLE orders CASCADE", Unsafe),
    ] {
        match classify(sql, &catalog) {
            Ok(c) => panic!("{sql}: accepted {:?}", classes(&c.statements[0])),
            Err(e) => assert_eq!(e.refusals[0].kind, kind, "{sql}: {e}"),
        }
    }
    let e = classify(
        "ALTER TABLE orders ADD COLUMN c int; DROP TABLE accounts",
        &catalog,
    )
    .unwrap_err();
    assert_eq!(e.refusals.len(), 1);
    assert_eq!(e.refusals[0].statement, Some(1));
    assert_eq!(e.refusals[0].sql.as_deref(), Some("DROP TABLE accounts"));
}

#[test]
fn mysql_statements_keep_their_text() {
    let c = classify(
        "ALTER TABLE orders ADD COLUMN `a;b` int; # a comment; with semicolons\nALTER TABLE orders MODIFY note varchar(30) COMMENT 'x;y'",
        &my_catalog(),
    )
    .unwrap();
    assert_eq!(c.statements.len(), 2);
    assert_eq!(
        c.statements[0].sql,
        "ALTER TABLE orders ADD COLUMN `a;b` int"
    );
    assert_eq!(
        c.statements[1].sql,
        "# a comment; with semicolons\nALTER TABLE orders MODIFY note varchar(30) COMMENT 'x;y'"
            .split_once('\n')
            .map(|(_, b)| b)
            .unwrap()
    );
}

#[test]
fn mysql_types() {
    let c = classify(
        "CREATE TABLE t (id bigint unsigned PRIMARY KEY, a tinyint, b mediumint unsigned, c decimal(12,3), d double, e datetime(3), f timestamp, g longtext, h varbinary(16), i json, j char(2), k float)",
        &my_catalog(),
    )
    .unwrap();
    let Change::CreateTable { columns, .. } = &c.statements[0].changes[0].change else {
        panic!()
    };
    let types: Vec<&SqlType> = columns.iter().map(|c| &c.data_type).collect();
    assert_eq!(
        types,
        vec![
            &SqlType::Int {
                bytes: 8,
                unsigned: true
            },
            &SqlType::Int {
                bytes: 1,
                unsigned: false
            },
            &SqlType::Int {
                bytes: 3,
                unsigned: true
            },
            &SqlType::Decimal {
                precision: Some(12),
                scale: Some(3)
            },
            &SqlType::Float { bytes: 8 },
            &SqlType::Timestamp {
                precision: Some(3),
                with_time_zone: false
            },
            &SqlType::Timestamp {
                precision: Some(0),
                with_time_zone: true
            },
            &SqlType::Text {
                max_bytes: Some(4_294_967_295)
            },
            &SqlType::Binary {
                max_bytes: Some(16)
            },
            &SqlType::Json { binary: false },
            &SqlType::Char { length: 2 },
            &SqlType::Float { bytes: 4 },
        ]
    );
    // The primary key column is NOT NULL even when not written so.
    assert!(!columns[0].nullable);
}
