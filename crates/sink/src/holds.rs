//! Holds asked for through the API (`POST /tables/{table}/hold`), kept in the target next to
//! the offsets (`lockstep.sink_holds` on PostgreSQL, `lockstep_sink_holds` on MariaDB /
//! MySQL), one row per pipeline and held target table.
//!
//! A DDL plan holds a quiesced table, changes the source, then the target, then releases it
//! (TRUNCATE the connector skips). A hold kept only in memory would end with a sink restart
//! in between, and the sink would apply the source's later changes before the target change
//! (a TRUNCATE would then erase them). Recorded before the status shows the table held, a
//! hold outlives the process: a sink reads the rows at start and holds those tables again.

/// PostgreSQL: the holds table (the schema exists with the offsets table).
pub const PG_HOLDS_DDL: &str = "
CREATE SCHEMA IF NOT EXISTS lockstep;
CREATE TABLE IF NOT EXISTS lockstep.sink_holds (
    pipeline     text        NOT NULL,
    target_table text        NOT NULL,
    held_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, target_table)
)";
pub const PG_HOLDS_SELECT: &str =
    "SELECT target_table FROM lockstep.sink_holds WHERE pipeline = $1 ORDER BY target_table";
pub const PG_HOLD_INSERT: &str = "INSERT INTO lockstep.sink_holds (pipeline, target_table)
VALUES ($1, $2) ON CONFLICT (pipeline, target_table) DO NOTHING";
pub const PG_HOLD_DELETE: &str =
    "DELETE FROM lockstep.sink_holds WHERE pipeline = $1 AND target_table = $2";

/// MariaDB / MySQL: the same, in the target database (ASCII keys as the offsets table).
pub const MY_HOLDS_DDL: &str = "CREATE TABLE IF NOT EXISTS `lockstep_sink_holds` (
    pipeline     VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    target_table VARCHAR(64)  NOT NULL,
    held_at      TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (pipeline, target_table)
) ENGINE = InnoDB";
pub const MY_HOLDS_SELECT: &str =
    "SELECT target_table FROM `lockstep_sink_holds` WHERE pipeline = ? ORDER BY target_table";
pub const MY_HOLD_INSERT: &str =
    "INSERT IGNORE INTO `lockstep_sink_holds` (pipeline, target_table) VALUES (?, ?)";
pub const MY_HOLD_DELETE: &str =
    "DELETE FROM `lockstep_sink_holds` WHERE pipeline = ? AND target_table = ?";
