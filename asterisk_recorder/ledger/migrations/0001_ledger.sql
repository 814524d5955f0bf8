-- asterisk-recorder consent ledger, schema version 1.
-- Applied by asterisk_recorder.ledger.migrate in one transaction under an advisory lock.
-- Never edit this file once released: add a new NNNN_name.sql instead (the runner checks checksums).

-- The role the application writes through: it may INSERT and SELECT ledger rows, nothing else.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'asterisk_recorder_app') THEN
        CREATE ROLE asterisk_recorder_app NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- another database of this cluster created it at the same moment
END
$$;

-- Let the migrating user SET ROLE to it (superusers can anyway).
DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT asterisk_recorder_app TO %I', current_user);
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'could not grant asterisk_recorder_app to %; grant it by hand', current_user;
END
$$;

-- The head of the hash chain: one row, locked FOR UPDATE by every writer, so the chain order is
-- total even with several controller instances writing at once.
CREATE TABLE ledger_head (
    id integer PRIMARY KEY CHECK (id = 1),
    seq bigint NOT NULL,
    hash bytea NOT NULL
);
INSERT INTO ledger_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

-- One row per consent decision. Personal data appears here only as keyed digests.
CREATE TABLE decisions (
    seq bigint PRIMARY KEY,
    decision_id uuid NOT NULL UNIQUE,
    driver text NOT NULL,
    channel_id text NOT NULL,
    channel_name text NOT NULL,
    uniqueid text NOT NULL,
    linkedid text NOT NULL,
    asterisk_id text NOT NULL,
    instance_id text NOT NULL,
    caller_number_digest bytea NOT NULL,
    caller_name_digest bytea NOT NULL,
    called_number_digest bytea NOT NULL,
    parties jsonb NOT NULL,
    mode text NOT NULL,
    policy_rows text[] NOT NULL,
    policy_version text NOT NULL,
    prompt_id text,
    language text NOT NULL,
    keys jsonb NOT NULL,
    outcome text NOT NULL,
    reason text NOT NULL,
    offered_at timestamptz NOT NULL,
    answered_at timestamptz,
    disclosure_started_at timestamptz,
    disclosure_finished_at timestamptz,
    decided_at timestamptz NOT NULL,
    recording_path text,
    text_notes jsonb NOT NULL,
    key_id text NOT NULL,
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now()
);
-- hash indexes: caller-influenced text of any length must never hit the btree row-size limit.
CREATE INDEX decisions_uniqueid_idx ON decisions USING hash (uniqueid);
CREATE INDEX decisions_linkedid_idx ON decisions USING hash (linkedid);
CREATE INDEX decisions_channel_id_idx ON decisions USING hash (channel_id);
CREATE INDEX decisions_caller_digest_idx ON decisions (caller_number_digest);
CREATE INDEX decisions_called_digest_idx ON decisions (called_number_digest);
CREATE INDEX decisions_decided_at_idx ON decisions (decided_at);

-- The plain personal values; erasure and retention delete these rows, the chain stays verifiable.
CREATE TABLE decision_personal (
    decision_id uuid PRIMARY KEY REFERENCES decisions (decision_id),
    caller_number text NOT NULL,
    caller_name text NOT NULL,
    called_number text NOT NULL,
    party_numbers jsonb NOT NULL
);

-- Audit events (erase, purge), chained in the same sequence as decisions.
CREATE TABLE ledger_events (
    seq bigint PRIMARY KEY,
    event_id uuid NOT NULL UNIQUE,
    kind text NOT NULL,
    at timestamptz NOT NULL,
    actor text NOT NULL,
    detail jsonb NOT NULL,
    key_id text NOT NULL,
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now()
);

-- Append-only: UPDATE, DELETE and TRUNCATE are refused, except the deletion of personal rows
-- inside ledger_forget() (which sets a transaction-local flag).
CREATE FUNCTION ledger_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'decision_personal'
            AND current_setting('asterisk_recorder.forgetting', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the consent ledger is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER decisions_append_only BEFORE UPDATE OR DELETE ON decisions
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER decisions_no_truncate BEFORE TRUNCATE ON decisions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER personal_append_only BEFORE UPDATE OR DELETE ON decision_personal
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER personal_no_truncate BEFORE TRUNCATE ON decision_personal
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON ledger_events
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON ledger_events
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER head_no_delete BEFORE DELETE ON ledger_head
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER head_no_truncate BEFORE TRUNCATE ON ledger_head
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();

-- Erasure and retention: remove the personal rows of these decisions. Runs with the owner's
-- rights; the caller records the matching chained event in the same transaction.
CREATE FUNCTION ledger_forget(ids uuid[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    removed integer;
BEGIN
    PERFORM set_config('asterisk_recorder.forgetting', 'on', true);
    DELETE FROM decision_personal WHERE decision_id = ANY (ids);
    GET DIAGNOSTICS removed = ROW_COUNT;
    PERFORM set_config('asterisk_recorder.forgetting', 'off', true);
    RETURN removed;
END
$$;
REVOKE ALL ON FUNCTION ledger_forget(uuid[]) FROM PUBLIC;

GRANT SELECT, INSERT ON decisions, decision_personal, ledger_events TO asterisk_recorder_app;
GRANT SELECT, UPDATE (seq, hash) ON ledger_head TO asterisk_recorder_app;
GRANT EXECUTE ON FUNCTION ledger_forget(uuid[]) TO asterisk_recorder_app;
DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO asterisk_recorder_app', current_schema());
END
$$;
GRANT SELECT ON ledger_schema_migrations TO asterisk_recorder_app;
