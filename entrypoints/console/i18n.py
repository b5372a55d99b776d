"""The console's two languages: English and Simplified Chinese, chosen by the `of_lang` cookie (the switch in the
header) or else the browser's Accept-Language. Order data is shown as entered, never translated."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request

LANGUAGES = ("en", "zh-CN")
LANGUAGE_COOKIE = "of_lang"

_MESSAGES: dict[str, tuple[str, str]] = {
    # key: (English, 简体中文)
    "app": ("orderflow console", "orderflow 工作台"),
    "sign_in": ("Sign in", "登录"),
    "sign_out": ("Sign out", "退出"),
    "user_name": ("User name", "用户名"),
    "password": ("Password", "密码"),
    "session_ended": ("Your session has ended: sign in again.", "会话已结束，请重新登录。"),
    "form_expired": (
        "This form has expired or did not come from this site: reload the page and try again.",
        "表单已过期或来源不明：请刷新页面后重试。",
    ),
    "inbox": ("To do", "待办"),
    "approvals": ("Approvals waiting for you", "等待您审批"),
    "no_approvals": ("Nothing is waiting for your approval.", "没有等待您审批的订单。"),
    "notices": ("Notices", "通知"),
    "no_notices": ("No notices.", "没有通知。"),
    "mark_read": ("Mark read", "标为已读"),
    "unread": ("unread", "未读"),
    "level": ("Level", "级别"),
    "credit_hold": ("Credit hold", "信用冻结"),
    "waiting_for": ("waiting", "已等待"),
    "due": ("decide by", "截止"),
    "overdue": ("overdue", "已超时"),
    "customer": ("Customer", "客户"),
    "sales_rep": ("Sales rep", "销售"),
    "channel": ("Channel", "渠道"),
    "total": ("Total", "金额"),
    "lines": ("Lines", "明细"),
    "why": ("Why it needs you", "审批原因"),
    "no_rules": ("No rule fired: the level is the order's routing.", "未触发规则：按订单审批路线。"),
    "exposure": ("Credit exposure with this order", "含本单信用占用"),
    "limit": ("limit", "额度"),
    "over_limit": ("over the limit", "超出额度"),
    "history": ("History", "历史"),
    "first_order": ("first order", "首单"),
    "completed_orders": ("completed orders", "已完成订单"),
    "comment": ("Comment", "备注"),
    "approve": ("Approve", "批准"),
    "reject": ("Reject", "拒绝"),
    "approved": ("approved", "已批准"),
    "rejected": ("rejected", "已拒绝"),
    "moved_on": ("This order has moved on since the page was shown.", "页面显示后订单状态已变化。"),
    "orders": ("Orders", "订单"),
    "search": ("Search", "搜索"),
    "search_hint": ("Order no, customer, SKU or tracking no", "订单号、客户、SKU 或运单号"),
    "status": ("Status", "状态"),
    "any": ("any", "全部"),
    "warehouse": ("Warehouse", "仓库"),
    "from": ("From", "起始日期"),
    "to": ("To", "截止日期"),
    "created": ("Created", "创建时间"),
    "updated": ("Updated", "更新时间"),
    "no_orders": ("No order matches.", "没有符合条件的订单。"),
    "page": ("Page", "第"),
    "of": ("of", "页，共"),
    "pages_suffix": ("", " 页"),
    "previous": ("Previous", "上一页"),
    "next": ("Next", "下一页"),
    "no_such_order": ("There is no such order.", "没有这个订单。"),
    "order": ("Order", "订单"),
    "paid": ("paid", "已付款"),
    "unpaid": ("not paid", "未付款"),
    "qty": ("Qty", "数量"),
    "unit_price": ("Unit price", "单价"),
    "allocation": ("Allocation", "库存分配"),
    "lot": ("Lot", "批次"),
    "bin": ("Bin", "库位"),
    "approvals_done": ("Approvals", "审批记录"),
    "by": ("By", "审批人"),
    "role": ("Role", "角色"),
    "when": ("When", "时间"),
    "decision": ("Decision", "决定"),
    "refused_attempt": ("refused attempt", "被拒绝的尝试"),
    "credit": ("Credit", "信用"),
    "receivables": ("Receivables", "应收账款"),
    "open_orders": ("Open orders", "未结订单"),
    "pick_lists": ("Pick lists", "拣货单"),
    "parcels": ("Parcels", "包裹"),
    "carrier": ("Carrier", "承运商"),
    "tracking_no": ("Tracking no", "运单号"),
    "signed_by": ("Signed by", "签收人"),
    "notices_sent": ("Notices sent", "已发送通知"),
    "timeline": ("Timeline", "时间线"),
    "in_temporal": ("Open its workflow in the Temporal UI", "在 Temporal UI 中查看工作流"),
    "none": ("None.", "无。"),
    "pick_todos": ("Pick lists to do", "待拣货"),
    "no_pick_todos": ("No pick list is waiting in your warehouses.", "您的仓库没有待拣货单。"),
    "no_warehouse": ("You are in no warehouse yet: an admin adds you to yours.", "您尚未分配仓库，请联系管理员。"),
    "no_such_pick_list": ("There is no such pick list.", "没有这个拣货单。"),
    "pick_list": ("Pick list", "拣货单"),
    "units": ("units", "件"),
    "picked": ("Picked", "已拣货"),
    "picked_by": ("picked by", "拣货人"),
    "mark_picked": ("Mark picked", "标记已拣货"),
    "list_closed": (
        "This pick list is no longer open (the order was cancelled or has shipped).",
        "拣货单已关闭（订单已取消或已发货）。",
    ),
    "print": ("Print pick list and delivery note", "打印拣货单和发货单"),
    "delivery_note": ("Delivery note", "发货单"),
    "ship_to": ("Ship to", "收货人"),
    "phone": ("Phone", "电话"),
    "address": ("Address", "地址"),
    "dispatch": ("Dispatch", "发货"),
    "choose_carrier": ("Choose the carrier.", "请选择承运商。"),
    "tracking_format": ("4 to 40 letters, digits or dashes.", "4 到 40 位字母、数字或短横线。"),
    "dispatched_flash": ("dispatched", "已发货"),
    # approve from the mail
    "link_invalid": (
        "This link is not valid: check that it was copied whole from the message.",
        "链接无效：请确认从邮件中完整复制。",
    ),
    "link_used": (
        "This link was used on {at} UTC; a link works once.",
        "此链接已于 {at} UTC 使用过；链接只能使用一次。",
    ),
    "link_moved_on": (
        "Order {order_no} no longer awaits this decision: someone decided it, or it moved on.",
        "订单 {order_no} 已不再等待此审批：已有人审批，或订单已变化。",
    ),
    "link_expired": ("This link expired on {at} UTC.", "此链接已于 {at} UTC 过期。"),
    "link_not_yours": (
        "This decision on order {order_no} is no longer yours to make.",
        "订单 {order_no} 的此项审批已不归您处理。",
    ),
    "link_dead_end": ("You can still sign in to the console.", "您仍可登录工作台处理。"),
    "confirm_decision": ("Confirm your decision", "确认审批"),
    "deciding_as": ("You decide as {name} ({role}), level {level}.", "您以 {name}（{role}）身份审批第 {level} 级。"),
    "link_valid_until": ("This link works once, until {at} UTC.", "此链接仅可使用一次，有效期至 {at} UTC。"),
    "choose_decision": ("Choose approve or reject.", "请选择批准或拒绝。"),
    "decided": ("Order {order_no} {decision}. Thank you.", "订单 {order_no} {decision}。谢谢。"),
    "open_in_console": ("Open the order in the console", "在工作台中查看订单"),
    # the customer's tracking page
    "your_order": ("Your order", "您的订单"),
    "ordered_on": ("Ordered", "下单时间"),
    "items": ("Items", "商品"),
    "no_parcels": ("No parcel has left our warehouse yet.", "尚无包裹发出。"),
    "dispatched_on": ("Dispatched", "发货时间"),
    "expected_by": ("Expected by", "预计送达"),
    "delivered_on": ("Delivered", "签收时间"),
    "parcel_events": ("Parcel events", "物流轨迹"),
    "stage_received": ("Received: we are checking your order.", "已收到：我们正在审核您的订单。"),
    "stage_awaiting_payment": ("Waiting for your payment.", "等待付款。"),
    "stage_preparing": ("Being prepared in our warehouse.", "仓库备货中。"),
    "stage_on_its_way": ("On its way.", "运输中。"),
    "stage_out_for_delivery": ("Out for delivery today.", "今日派送中。"),
    "stage_delivery_problem": ("There is a problem with the delivery: we are on it.", "配送出现问题，我们正在处理。"),
    "stage_delivered": ("Delivered.", "已签收。"),
    "stage_cancelled": ("Cancelled.", "已取消。"),
    "parcel_PENDING": ("Waiting for the carrier", "等待揽收"),
    "parcel_INFO_RECEIVED": ("Announced to the carrier", "已通知承运商"),
    "parcel_PICKED_UP": ("Picked up", "已揽收"),
    "parcel_IN_TRANSIT": ("In transit", "运输中"),
    "parcel_OUT_FOR_DELIVERY": ("Out for delivery", "派送中"),
    "parcel_AVAILABLE_FOR_PICKUP": ("Ready for pick-up", "待自提"),
    "parcel_ATTEMPT_FAILED": ("Delivery attempt failed", "派送未成功"),
    "parcel_DELIVERED": ("Delivered", "已签收"),
    "parcel_REFUSED": ("Refused", "拒收"),
    "parcel_RETURNING": ("Returning to us", "退回中"),
    "parcel_RETURNED": ("Returned to us", "已退回"),
    "parcel_EXCEPTION": ("Delivery problem", "配送异常"),
    "parcel_EXPIRED": ("No news from the carrier", "承运商无更新"),
    # finance
    "finance": ("Finance", "财务"),
    "payments_to_confirm": ("Payments to confirm", "待确认收款"),
    "payment_reference": ("Payment reference (bank or provider)", "付款凭证号（银行或支付机构）"),
    "confirm_payment": ("Confirm payment received", "确认已收款"),
    "payment_confirmed": ("payment confirmed", "收款已确认"),
    "reference_required": ("Give the payment's reference.", "请填写付款凭证号。"),
    "credit_holds": ("Credit holds", "信用冻结"),
    "decide_in_inbox": ("Decide it in your inbox", "在待办中处理"),
    "refunds_to_make": ("Refunds to make", "待退款"),
    "refund_reference": ("Refund reference (bank or provider)", "退款凭证号（银行或支付机构）"),
    "record_refund": ("Record refund made", "登记已退款"),
    "refund_recorded": ("refund recorded", "退款已登记"),
    "money_todos": ("Money to handle", "待处理款项"),
    # ops
    "exceptions": ("Exceptions", "异常"),
    "delivery_exceptions": ("Delivery exceptions", "配送异常"),
    "quiet_parcels": ("Parcels without carrier news", "无物流更新的包裹"),
    "no_news_for": ("no news for", "已无更新"),
    "failed_orders": ("Failed orders (last 14 days)", "失败订单（近 14 天）"),
    "backorders_waiting": ("Backorders waiting for stock", "等待到货的缺货订单"),
    "past_sla": ("Orders past their stage's time", "超出环节时限的订单"),
    "since": ("since", "已持续"),
    "late_by": ("late by", "超时"),
    "requisitions": ("Purchase requisitions", "采购申请"),
    "req_backorder": ("for a backorder", "缺货补货"),
    "req_reorder_point": ("below the reorder point", "低于再订货点"),
    "book_receipt": ("Book the goods receipt", "登记到货"),
    "received_into": ("received into", "已入库至"),
    "cancelled": ("cancelled", "已取消"),
    "no_such_requisition": ("There is no such purchase requisition.", "没有这个采购申请。"),
    "ops_todos": ("Exceptions to look at", "待处理异常"),
    # bulk approval
    "approve_selected": ("Approve the ticked orders", "批准所选订单"),
    "bulk_comment": ("Comment for the ticked orders", "所选订单的备注"),
    "select_for_bulk": ("Tick for approving together:", "勾选以一并批准："),
    "bulk_approved": ("Approved", "已批准"),
    "bulk_refused": ("Not approved", "未批准"),
    "bulk_none": ("No order was ticked.", "未勾选任何订单。"),
    # the order form, cancel, the tracking link
    "new_order": ("New order", "新建订单"),
    "not_yours": ("This page is not for your role.", "此页面不适用于您的角色。"),
    "fix_fields": ("Nothing was submitted: correct the fields marked below.", "未提交：请更正下方标出的字段。"),
    "order_no_taken": (
        "That order number was just taken: the order has a new one, submit again.",
        "该订单号刚被占用：已换新号，请再次提交。",
    ),
    "submitted_flash": ("Order submitted: it is being checked now.", "订单已提交，正在审核。"),
    "cancelled_flash": ("Order cancelled.", "订单已取消。"),
    "payment_method": ("Payment", "付款方式"),
    "pay_credit": ("On credit (invoice)", "赊销（开票）"),
    "pay_prepaid": ("Prepayment", "预付款"),
    "pay_cod": ("Cash on delivery", "货到付款"),
    "order_type": ("Order type", "订单类型"),
    "type_standard": ("Standard", "标准"),
    "type_sample": ("Sample", "样品"),
    "ship_name": ("Recipient", "收货人"),
    "ship_phone": ("Phone", "电话"),
    "ship_region": ("Region", "区域"),
    "ship_province": ("Province", "省份"),
    "ship_city": ("City", "城市"),
    "ship_address": ("Street address", "详细地址"),
    "ship_postcode": ("Postcode", "邮编"),
    "lines_hint": ("Leave the unit price empty for the list price.", "单价留空即按价目表价格。"),
    "line": ("Line", "明细"),
    "product": ("Product", "商品"),
    "list_price": ("list price", "价目表价"),
    "submit_order": ("Submit order", "提交订单"),
    "tracking_link": ("The customer's tracking link", "客户物流查询链接"),
    "tracking_link_hint": (
        "Send it to the customer: it opens this order's tracking page, nothing else, for 60 days.",
        "发给客户：仅可查看本订单的物流页面，60 天内有效。",
    ),
    "copy": ("Copy", "复制"),
    "copied": ("Copied", "已复制"),
    "cancel_reason": ("Reason for cancelling", "取消原因"),
    "cancel_order": ("Cancel order", "取消订单"),
    "reason_required": ("Say why the order is cancelled.", "请填写取消原因。"),
    "language": ("中文", "English"),  # the switch shows the other language
}


def language_of(request: Request) -> str:
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return "en"


def translator(language: str) -> Callable[[str], str]:
    index = 1 if language == "zh-CN" else 0

    def t(key: str) -> str:
        return _MESSAGES[key][index]

    return t


def other_language(language: str) -> str:
    return "en" if language == "zh-CN" else "zh-CN"
