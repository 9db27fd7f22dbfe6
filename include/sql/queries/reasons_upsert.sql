-- One outcome of include/msads_capi/outcomes.py into msads.reasons (written on every migrate).
INSERT INTO msads.reasons (reason, status, sentence, fix) VALUES (%s, %s, %s, %s)
ON CONFLICT (reason) DO UPDATE SET status = EXCLUDED.status, sentence = EXCLUDED.sentence,
    fix = EXCLUDED.fix
