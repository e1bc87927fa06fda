DROP INDEX `invoice_book_open_expiry`;--> statement-breakpoint
DROP INDEX `invoice_book_open_hash`;--> statement-breakpoint
CREATE INDEX `invoice_book_live_expiry` ON `invoice_book` (`expires_at`) WHERE status in ('open', 'withdrawn');--> statement-breakpoint
CREATE INDEX `invoice_book_live_hash` ON `invoice_book` (`payment_hash`) WHERE status in ('open', 'withdrawn');--> statement-breakpoint
CREATE INDEX `invoice_book_open_age` ON `invoice_book` (`subject_kind`,`purpose`,`created_at`) WHERE status = 'open';