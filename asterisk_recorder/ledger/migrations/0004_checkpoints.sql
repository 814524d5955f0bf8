-- asterisk-recorder consent ledger, schema version 4: the Merkle tree and signed checkpoints.
-- The tree's leaves are the chain's rows in sequence order (leaf input: the row's 32-byte chain
-- hash). Its node hashes are kept as C2SP-style tiles of height 8; they are DERIVED data that
-- `ledger verify` recomputes from the rows, so a tampered tile is found, not trusted.
-- Never edit this file once released.

CREATE TABLE ledger_tiles (
    level smallint NOT NULL CHECK (level BETWEEN 0 AND 7),
    idx bigint NOT NULL CHECK (idx >= 0),
    -- 1 to 256 concatenated 32-byte node hashes at height 8 * level, indices 256 * idx + j
    hashes bytea NOT NULL CHECK (octet_length(hashes) BETWEEN 32 AND 8192
                                 AND octet_length(hashes) % 32 = 0),
    PRIMARY KEY (level, idx)
);

-- How many leaves the tiles cover (moved in the same transaction as the tiles).
CREATE TABLE ledger_tree (
    id integer PRIMARY KEY CHECK (id = 1),
    size bigint NOT NULL CHECK (size >= 0)
);
INSERT INTO ledger_tree (id, size) VALUES (1, 0);

-- Signed checkpoints (C2SP tlog-checkpoint signed notes), also pushed to the witnesses.
CREATE TABLE ledger_checkpoints (
    tree_size bigint PRIMARY KEY CHECK (tree_size > 0),
    root bytea NOT NULL CHECK (octet_length(root) = 32),
    key_name text NOT NULL,
    key_id text NOT NULL CHECK (key_id ~ '^[0-9a-f]{8}$'),
    note text NOT NULL CHECK (octet_length(note) <= 65536),
    signed_at timestamptz NOT NULL DEFAULT now()
);

-- A tile may only grow at its right edge: its old hashes stay a prefix of the new ones.
CREATE FUNCTION ledger_tile_grows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.level = OLD.level AND NEW.idx = OLD.idx
            AND octet_length(NEW.hashes) > octet_length(OLD.hashes)
            AND substring(NEW.hashes FROM 1 FOR octet_length(OLD.hashes)) = OLD.hashes THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'ledger tiles only grow: % on ledger_tiles (%, %) is refused',
        TG_OP, OLD.level, OLD.idx USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER tiles_only_grow BEFORE UPDATE OR DELETE ON ledger_tiles
    FOR EACH ROW EXECUTE FUNCTION ledger_tile_grows();
CREATE TRIGGER tiles_no_truncate BEFORE TRUNCATE ON ledger_tiles
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON ledger_checkpoints
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON ledger_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER tree_no_delete BEFORE DELETE ON ledger_tree
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

GRANT SELECT, INSERT, UPDATE (hashes) ON ledger_tiles TO asterisk_recorder_app;
GRANT SELECT, UPDATE (size) ON ledger_tree TO asterisk_recorder_app;
GRANT SELECT, INSERT ON ledger_checkpoints TO asterisk_recorder_app;
