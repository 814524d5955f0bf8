-- asterisk-recorder: the role the ledger writes through, checked before any schema is created.
-- Applied first on a new database (0001 would otherwise stop with PostgreSQL's bare "permission
-- denied to create role"); on a database migrated before this file existed it only re-checks.
-- Never edit this file once released: add a new NNNN_name.sql instead (the runner checks checksums).
--
-- A superuser (or a CREATEROLE user) migrating creates asterisk_recorder_app itself. The documented
-- install migrates as the database owner, a plain LOGIN role: the administrator creates
-- asterisk_recorder_app and grants it to the owner first (docs/install-vanilla.md, step 2).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'asterisk_recorder_app') THEN
        BEGIN
            CREATE ROLE asterisk_recorder_app NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN
                NULL;  -- another database of this cluster created it at the same moment
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION USING
                    ERRCODE = 'insufficient_privilege',
                    MESSAGE = format(
                        'the role asterisk_recorder_app does not exist and %I may not create '
                        'roles; as a PostgreSQL superuser run: CREATE ROLE asterisk_recorder_app '
                        'NOLOGIN; GRANT asterisk_recorder_app TO %I; (docs/install-vanilla.md, '
                        'step 2), then migrate again', current_user, current_user);
        END;
    END IF;
    IF NOT pg_has_role(current_user, 'asterisk_recorder_app', 'MEMBER') THEN
        BEGIN
            EXECUTE format('GRANT asterisk_recorder_app TO %I', current_user);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION USING
                ERRCODE = 'insufficient_privilege',
                MESSAGE = format(
                    '%I is not a member of asterisk_recorder_app and may not grant it to itself; '
                    'as a PostgreSQL superuser run: GRANT asterisk_recorder_app TO %I; '
                    '(docs/install-vanilla.md, step 2), then migrate again',
                    current_user, current_user);
        END;
    END IF;
END
$$;
