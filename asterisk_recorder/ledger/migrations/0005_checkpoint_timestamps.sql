-- asterisk-recorder consent ledger, schema version 5: RFC 3161 timestamps on checkpoints.
-- A time-stamping authority (TSA) the operator names signs the SHA-256 of each checkpoint's
-- note; the token is kept here and checked by `ledger verify` against the TSA's root.
-- Never edit this file once released.

CREATE TABLE ledger_checkpoint_timestamps (
    tree_size bigint NOT NULL REFERENCES ledger_checkpoints (tree_size),
    tsa text NOT NULL CHECK (octet_length(tsa) BETWEEN 1 AND 2048),
    token bytea NOT NULL CHECK (octet_length(token) BETWEEN 1 AND 65536),
    gen_time timestamptz NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tree_size, tsa)
);

CREATE TRIGGER checkpoint_timestamps_append_only BEFORE UPDATE OR DELETE
    ON ledger_checkpoint_timestamps FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER checkpoint_timestamps_no_truncate BEFORE TRUNCATE
    ON ledger_checkpoint_timestamps FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();

GRANT SELECT, INSERT ON ledger_checkpoint_timestamps TO asterisk_recorder_app;
