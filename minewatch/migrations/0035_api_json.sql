-- api_time(t): a timestamptz as the API writes times (RFC 3339 in UTC with Z; microseconds
-- only when there are any), the same text pydantic / msgspec produce, so that pages built as
-- JSON inside PostgreSQL (api/jsonpage.py) look exactly like pages built in Python.
-- Whole seconds (nearly every time the API shows) go through to_json, which writes ISO 8601
-- whatever the session's DateStyle and costs half of to_char; fractions need to_char's six
-- digits. STABLE like date_trunc on timestamptz, so the planner inlines it (a function call
-- per value would cost more than the formatting).
CREATE OR REPLACE FUNCTION api_time(t timestamptz) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN date_trunc('second', t) = t THEN (to_json(t AT TIME ZONE 'UTC') #>> '{}') || 'Z'
                ELSE to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') END
$$;
