-- ledger_forget() runs with its owner's rights (SECURITY DEFINER): it must resolve names only
-- in the ledger's own schema, and never through pg_temp first (a caller's temporary table
-- could otherwise shadow decision_personal).
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION ledger_forget(uuid[]) SET search_path = %I, pg_temp',
                   current_schema());
END
$$;
