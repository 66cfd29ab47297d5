-- Exact-out orders (issue 11, item 2): "receive exactly N of the output, spend at most the quote plus
-- slippage". Such an order keeps its target output (integer base units of the output mint) and has
-- amount_in 0 (what it spends is decided by its route, bounded by the route's max-in on chain); every
-- other order keeps amount_in > 0 and no target. Exact-out is for market orders (and executed quotes)
-- only. Every confirmed order records what its swap actually debited from the wallet.
ALTER TABLE orders DROP CONSTRAINT orders_amount_in_check;
ALTER TABLE orders
    ADD COLUMN exact_amount_out numeric(20, 0)
        CHECK (exact_amount_out > 0 AND exact_amount_out <= 18446744073709551615),
    ADD COLUMN amount_in_spent numeric(20, 0)
        CHECK (amount_in_spent >= 0 AND amount_in_spent <= 18446744073709551615),
    ADD CONSTRAINT orders_amount_in_check CHECK (amount_in >= 0 AND amount_in <= 18446744073709551615),
    ADD CONSTRAINT orders_amount_mode CHECK (
        (exact_amount_out IS NULL AND amount_in > 0)
        OR (exact_amount_out IS NOT NULL AND amount_in = 0 AND order_type = 'market'));
