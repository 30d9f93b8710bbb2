-- 011: settlement_exceptions.kind admits debit_without_installment (CONTRACT 3 and 4.2): a
-- SUCCESS row of an instruction whose installment is not among D's installments.
ALTER TABLE settlement_exceptions DROP CONSTRAINT settlement_exceptions_kind_check;
ALTER TABLE settlement_exceptions ADD CONSTRAINT settlement_exceptions_kind_check
    CHECK (kind IN ('orphan_settlement', 'duplicate_debit', 'debit_without_installment'));
