-- Where each logged command came in (topic:partition:offset of its tenant record): the
-- same record delivered again re-sends its stored answer and follow-ups only if they were
-- never confirmed delivered; the same command sent again in another record is answered
-- again with the first answer, and nothing is redone. Rows from before are ''.
ALTER TABLE command_log ADD COLUMN source text NOT NULL DEFAULT '';
