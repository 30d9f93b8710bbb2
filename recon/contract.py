"""The vocabulary of CONTRACT.md: statuses, root causes, their labels and what ops does next."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    OVERPAID = "overpaid"
    PAID = "paid"
    PENDING = "pending"
    PARTIALLY_PAID = "partially_paid"
    UNPAID = "unpaid"


class RootCause(StrEnum):
    CARD_UNBOUND = "card_unbound"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    ACCOUNT_FROZEN = "account_frozen"
    ACCOUNT_CLOSED = "account_closed"
    GATEWAY_OUTAGE = "gateway_outage"
    INSTRUCTION_NOT_CONFIRMED = "instruction_not_confirmed"
    NOT_INSTRUCTED = "not_instructed"
    NO_SETTLEMENT_RECORD = "no_settlement_record"
    SETTLEMENT_PENDING = "settlement_pending"
    OTHER_DECLINE = "other_decline"
    UNCLASSIFIED = "unclassified"


ROOT_CAUSE_ZH: dict[RootCause, str] = {
    RootCause.CARD_UNBOUND: "未绑卡或绑卡失效",
    RootCause.INSUFFICIENT_BALANCE: "余额不足",
    RootCause.ACCOUNT_FROZEN: "账户冻结",
    RootCause.ACCOUNT_CLOSED: "账户已销户",
    RootCause.GATEWAY_OUTAGE: "支付通道异常",
    RootCause.INSTRUCTION_NOT_CONFIRMED: "扣款指令未确认",
    RootCause.NOT_INSTRUCTED: "未发起扣款",
    RootCause.NO_SETTLEMENT_RECORD: "通道无回盘记录",
    RootCause.SETTLEMENT_PENDING: "回盘文件未到",
    RootCause.OTHER_DECLINE: "其他拒付",
    RootCause.UNCLASSIFIED: "未识别原因",
}

SUGGESTED_ACTION: dict[RootCause, str] = {
    RootCause.CARD_UNBOUND: "remind the borrower to bind a valid card",
    RootCause.INSUFFICIENT_BALANCE: "SMS reminder; retry after payday",
    RootCause.ACCOUNT_FROZEN: "contact borrower; check judicial freeze",
    RootCause.ACCOUNT_CLOSED: "borrower must bind a new account",
    RootCause.GATEWAY_OUTAGE: "retry once the gateway recovers; no borrower contact",
    RootCause.INSTRUCTION_NOT_CONFIRMED: "ask the borrower to confirm; check SMS delivery",
    RootCause.NOT_INSTRUCTED: "internal: collections system did not send",
    RootCause.NO_SETTLEMENT_RECORD: "query the gateway for the transaction",
    RootCause.SETTLEMENT_PENDING: "rerun D when the file arrives",
    RootCause.OTHER_DECLINE: "read the response code",
    RootCause.UNCLASSIFIED: "investigate; extend the code map",
}

# Causes a response code may map to (an operator override may name any of these).
CODE_MAPPABLE_CAUSES: frozenset[RootCause] = frozenset(
    {
        RootCause.CARD_UNBOUND,
        RootCause.INSUFFICIENT_BALANCE,
        RootCause.ACCOUNT_FROZEN,
        RootCause.ACCOUNT_CLOSED,
        RootCause.GATEWAY_OUTAGE,
        RootCause.INSTRUCTION_NOT_CONFIRMED,
        RootCause.OTHER_DECLINE,
        RootCause.UNCLASSIFIED,
    }
)


class SettlementExceptionKind(StrEnum):
    ORPHAN_SETTLEMENT = "orphan_settlement"
    DUPLICATE_DEBIT = "duplicate_debit"
    DEBIT_WITHOUT_INSTALLMENT = "debit_without_installment"


# Amounts are stored as NUMERIC(14,2): at most 999,999,999,999.99 yuan.
MAX_AMOUNT_FEN = 99_999_999_999_999

BINDING_STATUSES = ("ACTIVE", "UNBOUND", "REVOKED", "EXPIRED")
CONFIRM_STATUSES = ("CONFIRMED", "PENDING", "EXPIRED", "FAILED", "NOT_REQUIRED")
SETTLEMENT_STATUSES = ("SUCCESS", "FAILED")

EXCEPTIONS_COLUMNS = [
    "business_date", "loan_id", "installment_no", "borrower_id", "status", "root_cause",
    "root_cause_zh", "amount_due", "amount_settled", "amount_outstanding", "gateway",
    "response_code", "response_msg", "attempts", "last_attempt_at", "card_no_masked",
    "suggested_action", "evidence", "days_past_due",
]
# The columns of exceptions.csv recon writes itself from its own enums, labels, numbers and
# moments (no input text): written as they are, not searched for card numbers
# (protect.safe_frame's `own`). 250k rows of long bilingual labels cost a second of masking.
EXCEPTIONS_OWN = frozenset({
    "business_date", "status", "root_cause", "root_cause_zh", "amount_due", "amount_settled",
    "amount_outstanding", "attempts", "last_attempt_at", "suggested_action", "evidence",
    "days_past_due"})
SETTLEMENT_EXCEPTIONS_COLUMNS = [
    "business_date", "gateway", "gateway_txn_id", "instruction_id", "amount", "kind", "detail",
]
REJECTS_COLUMNS = ["business_date", "file", "line", "column", "value", "reason"]
# CONTRACT 7: retry_plan.csv and table retry_plan (with run_id). subject is `installment`, or
# `duplicate_debit` for the refund of one extra SUCCESS row.
RETRY_PLAN_COLUMNS = [
    "business_date", "subject", "loan_id", "installment_no", "borrower_id", "status",
    "root_cause", "days_past_due", "action", "not_before", "gateway", "binding_id", "amount",
    "attempts", "max_attempts", "instruction_id", "gateway_txn_id", "reason",
]
# Its columns recon writes itself (as EXCEPTIONS_OWN): all but the ids and the gateway.
RETRY_PLAN_OWN = frozenset({
    "business_date", "subject", "status", "root_cause", "days_past_due", "action", "not_before",
    "amount", "attempts", "max_attempts", "reason"})


class ExitCode:
    OK = 0
    INTERNAL = 1
    USAGE = 2
    INPUT_REFUSED = 3
    INCOMPLETE = 4
    DATABASE = 5
    INTERRUPTED = 130  # SIGINT: 128 + 2
    TERMINATED = 143  # SIGTERM: 128 + 15
