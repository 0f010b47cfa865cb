-- The read-only view a Signpost node reads (PostgreSQL): a worked example for an authority's CMS team.
--
-- Run by the CMS database's owner on the reporting replica (or the live database), once; re-run after a
-- schema change. It creates nothing but one view and one login that may read only that view. The node
-- never writes: it opens every transaction read-only, but the grant below is what really guards the CMS.
--
-- The generic case-management schema this example assumes (yours will differ: keep the view's column
-- names, or change [source.columns] in node-source.toml to match yours):
--
--   people       (person_id, forename, middle_names, surname, aliases, dob, sex_code, nhs_no,
--                 protected_flag, updated_at)          -- sex_code 1/2/9; protected_flag Y/N; aliases 'a|b'
--   addresses    (address_id, person_id, line1, town, postcode, is_current)   -- is_current Y/N
--   workers      (worker_id, full_name, job_title, phone, email, team_name, service_name)
--   involvements (involvement_id, person_id, worker_id, start_date, end_date, confidential)
--                                                       -- one row per involvement; confidential Y/N
--
-- One row per involvement with a child; rows with the same person_id are one child. Only what a
-- signpost needs: no case notes, no reasons for involvement, no family members.

CREATE OR REPLACE VIEW signpost_children_v AS
SELECT p.person_id,
       p.forename,
       p.middle_names,
       p.surname,
       p.aliases,
       p.dob,
       p.sex_code,
       p.nhs_no,
       p.protected_flag,
       concat_ws(', ', a.line1, a.town) AS address_text,
       a.postcode,
       w.service_name,
       w.team_name,
       w.full_name AS worker_name,
       w.job_title,
       w.phone AS worker_phone,
       w.email AS worker_email,
       i.start_date,
       i.end_date,
       i.confidential,
       -- The change column (change_column = "updated_at"): it must grow whenever anything in any of a
       -- child's rows changes. Here the CMS bumps people.updated_at on every change to the child's case;
       -- if yours keeps updated_at per table, use GREATEST(p.updated_at, i.updated_at, a.updated_at, ...).
       p.updated_at
FROM involvements i
JOIN people p ON p.person_id = i.person_id
LEFT JOIN addresses a ON a.person_id = p.person_id AND a.is_current = 'Y'
LEFT JOIN workers w ON w.worker_id = i.worker_id
-- Leave out what must never reach Signpost at all here, e.g. adoption records:
-- WHERE p.record_type <> 'ADOPTION'
;

-- The node's login: it may read this view and nothing else. Set its password outside this file:
--   \password signpost_reader        (psql), then put the same password in the node's credential
-- (systemd: /etc/signpost/credentials/source-password; Kubernetes: Secret signpost-node-<code>-source).
CREATE ROLE signpost_reader LOGIN;
ALTER ROLE signpost_reader SET default_transaction_read_only = on;
GRANT CONNECT ON DATABASE cms TO signpost_reader;
GRANT USAGE ON SCHEMA public TO signpost_reader;
GRANT SELECT ON signpost_children_v TO signpost_reader;
-- A view reads its tables with its owner's rights: no grant on people, involvements, addresses or workers.

-- MySQL/MariaDB: the same SELECT (CONCAT_WS works there too), then
--   CREATE USER 'signpost_reader'@'signpost-node.leeds.internal' IDENTIFIED BY '...';
--   GRANT SELECT ON cms.signpost_children_v TO 'signpost_reader'@'signpost-node.leeds.internal';
-- SQL Server: the same SELECT with CONCAT_WS (2017+), a login and user with SELECT on the view only,
-- and ApplicationIntent=ReadOnly in the node's URL to reach a readable secondary.
-- Its change column is a rowversion: the largest of the joined rows', as a number, with
-- change_column = "row_version" in the node's TOML (GREATEST needs SQL Server 2022):
--   CAST((SELECT MAX(v) FROM (VALUES (p.row_ver), (i.row_ver), (a.row_ver)) AS r(v)) AS BIGINT) AS row_version
-- and no ORDER BY at the end of the view (the node wraps it in a subquery for incremental loads).
