-- Data migration (custom, written by hand; drizzle-kit generate --custom): the three invoice stores of
-- earlier versions (job invoices, session invoices, the invoice columns of node orders) move into the one
-- invoice book, each row naming its subject and the credits account of its payer.
INSERT INTO `invoice_book` (`payment_hash`, `subject_kind`, `subject_id`, `purpose`, `account`, `amount_msats`, `bolt11`, `status`, `expires_at`, `paid_at`, `created_at`)
SELECT i.`payment_hash`, 'job', i.`job_id`, i.`purpose`, coalesce(j.`customer_pubkey`, 'job:' || i.`job_id`), i.`amount_msats`, i.`bolt11`, i.`status`, i.`expires_at`, i.`paid_at`, i.`created_at`
  FROM `invoices` i LEFT JOIN `jobs` j ON j.`id` = i.`job_id`;
--> statement-breakpoint
INSERT INTO `invoice_book` (`payment_hash`, `subject_kind`, `subject_id`, `purpose`, `account`, `amount_msats`, `bolt11`, `status`, `expires_at`, `paid_at`, `created_at`)
SELECT i.`payment_hash`, 'session', i.`session_id`, i.`purpose`, coalesce(s.`pubkey`, 'session:' || i.`session_id`), i.`amount_msats`, i.`bolt11`, i.`status`, i.`expires_at`, i.`paid_at`, i.`created_at`
  FROM `session_invoices` i LEFT JOIN `sessions` s ON s.`id` = i.`session_id`;
--> statement-breakpoint
INSERT INTO `invoice_book` (`payment_hash`, `subject_kind`, `subject_id`, `purpose`, `account`, `amount_msats`, `bolt11`, `status`, `expires_at`, `paid_at`, `created_at`)
SELECT `payment_hash`, 'bootstrap', `id`, 'order', coalesce(`customer_pubkey`, 'bootstrap:' || `id`), `amount_msats`, `bolt11`,
       CASE WHEN `state` = 'awaiting_payment' THEN 'open' WHEN `paid_at` IS NULL AND `state` = 'expired' THEN 'expired' ELSE 'paid' END,
       `invoice_expires_at`, `paid_at`, `created_at`
  FROM `bootstrap_jobs`;
--> statement-breakpoint
INSERT INTO `counters` (`name`, `value`)
SELECT 'open_invoices:' || k.`kind`, (SELECT count(*) FROM `invoice_book` b WHERE b.`status` = 'open' AND b.`subject_kind` = k.`kind`)
  FROM (SELECT 'job' AS `kind` UNION ALL SELECT 'session' UNION ALL SELECT 'bootstrap') k;
