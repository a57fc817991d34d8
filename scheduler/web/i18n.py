# ruff: noqa: RUF001 - Chinese text uses full-width punctuation on purpose.
"""The dashboard's two languages, English and Simplified Chinese: a message catalog, and dates and
numbers written as each language writes them. A missing Chinese message falls back to English."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

LANGUAGES = {"en": "English", "zh-Hans": "简体中文"}
DEFAULT = "en"

EN: dict[str, str] = {
    "app": "crosspost desk", "login": "Sign in", "logout": "Sign out", "name": "Name",
    "password": "Password", "stories": "Stories", "inbox": "Inbox", "compose": "Compose",
    "accounts": "Accounts", "calendar": "Calendar", "audit": "Audit", "users": "Users and tokens",
    "health": "Health", "settings": "Preferences", "language": "Language", "timezone": "Time zone",
    "save": "Save", "filter": "Filter", "all": "All", "state": "State", "account": "Account",
    "story": "Story", "published": "published", "waiting_until": "waiting until {time}",
    "awaiting_approval": "awaiting approval", "failed": "failed", "unknown": "unknown",
    "blocked_auth": "blocked: re-authorise the account", "cancelled": "cancelled",
    "publishing": "publishing", "went_out": "It went out (link)", "publish_again": "Publish again",
    "retry": "Retry", "approve": "Approve", "reject": "Reject", "reason": "Reason",
    "publish_now": "Publish now (its time has passed)", "needs_attention": "Only what needs a person",
    "failed_deliveries": "Failed deliveries", "unknown_deliveries": "Did it go out?",
    "blocked_accounts": "Blocked accounts", "expiring_tokens": "Tokens expiring soon",
    "approvals": "Approvals waiting", "duplicates": "Possible duplicates", "nothing": "Nothing here.",
    "silent_feeds": "Feeds gone silent", "last_new_item": "last new item",
    "text": "Text", "link": "Link", "targets": "Targets", "tags": "Tags", "when": "When",
    "at_time": "At a time (your zone)", "next_slot": "Next slot of each account", "now": "Now",
    "variants": "Variants per platform", "thread": "Split into a thread where the platform allows",
    "queue": "Queue", "counters": "Per platform", "limit": "limit", "problems": "Problems",
    "queued": "Queued story {id}.", "not_queued": "Not queued: {n} problem(s).", "status": "Status",
    "token_expiry": "Token expires", "followers": "Followers", "growth_7d": "7 days", "pause": "Pause",
    "resume": "Resume", "week": "Week of {day}", "month": "Month from {day}", "previous": "Earlier",
    "next": "Later", "span": "Show", "span_week": "a week", "span_month": "a month",
    "account_time": "account's time", "your_time": "your time", "free": "free",
    "actor": "Who", "action": "Action", "object": "Object", "change": "Change", "at": "At",
    "older": "Older", "add_user": "Add a user", "roles": "Roles (comma-separated, e.g. editor@tag:en)",
    "disable": "Disable", "disabled": "disabled", "tokens": "Tokens", "create_token": "Create a token",
    "token_name": "Token name", "days": "Days", "revoke": "Revoke", "revoked": "revoked",
    "expires": "Expires", "secret_once": "Copy this token now; it is not shown again:",
    "ready": "Ready", "not_ready": "Not ready", "check": "Check", "ok": "ok", "problem": "problem",
    "forbidden": "Not allowed", "error": "Something needs fixing", "back": "Back",
    "done": "Done.", "user": "User", "retried": "Delivery {id} will be tried again.",
    "resolved": "Delivery {id} resolved.", "approved": "Story {id} approved.",
    "rejected": "Story {id} rejected.", "signed_in_as": "Signed in as {name}",
    "wrong_login": "Wrong name or password.", "chars": "{n} of {limit} {unit}",
    "skip": "Skip to the content", "menu": "Menu", "author": "Author", "due": "Due",
    "count": "{n} item(s)", "thread_parts": "A thread of {n} posts",
    "author_cannot_approve": "you wrote it: another approver decides",
    "status_awaiting_approval": "awaiting approval", "status_approved": "approved",
    "status_rejected": "rejected", "status_cancelled": "cancelled",
    "followers_30d": "Followers over the last 30 days", "cancel_story": "Cancel the story",
    "cancelled_story": "Story {id} cancelled.",
    "reconnect": "Re-connect", "connect": "Connect {platform}",
    "connect_title": "Connect a {platform} account",
    "handle": "{platform} handle", "connected": "Account {id} connected.",
    "app_password": "App password (Settings, App passwords on Bluesky)",
    "pds": "PDS address (if not bsky.social)",
    "connect_continue_text": "crosspost is registered on {instance}. Sign in there as {account} and allow "
                             "access; you will come back here.",
    "connect_continue": "Continue to {instance}", "connect_back": "Back to accounts",
    "instance": "Instance address (for example https://mastodon.social)",
    "bot_token": "Bot token (from @BotFather; the bot must be an administrator of the channel)",
    "move_story": "Move the story", "moved": "Story {id} moved.",
    "media": "Images and video", "image": "Image", "alt": "Alt text (what the image shows)",
    "video": "Video", "slot": "its posting slot", "new_time": "or a new time (your zone)",
    "followers_report": "Matrix report", "group_by": "Group by", "by_platform": "platform", "by_tag": "tag",
    "by_account": "account", "group": "Group", "stale": "Not sampled lately", "per_day": "Per day (UTC)",
    "day": "Day", "webhooks": "Webhooks", "events": "Events", "remove": "Remove", "hook_log": "Log of hook",
    "tries": "Tries", "last_answer": "Last answer", "add_webhook": "Add a webhook",
}

ZH: dict[str, str] = {
    "app": "crosspost 编辑台", "login": "登录", "logout": "退出", "name": "用户名", "password": "密码",
    "stories": "稿件", "inbox": "待办", "compose": "撰写", "accounts": "账号", "calendar": "日程",
    "audit": "审计日志", "users": "用户与令牌", "health": "运行状态", "settings": "偏好设置",
    "language": "语言", "timezone": "时区", "save": "保存", "filter": "筛选", "all": "全部",
    "state": "状态", "account": "账号", "story": "稿件", "published": "已发布",
    "waiting_until": "等待至 {time}", "awaiting_approval": "待审批", "failed": "失败", "unknown": "未知",
    "blocked_auth": "已阻断：请重新授权账号", "cancelled": "已取消", "publishing": "发布中",
    "went_out": "已发出（填链接）", "publish_again": "重新发布", "retry": "重试", "approve": "批准",
    "reject": "驳回", "reason": "理由", "publish_now": "立即发布（原定时间已过）",
    "needs_attention": "只看需要处理的", "failed_deliveries": "发布失败",
    "unknown_deliveries": "是否已发出？",
    "blocked_accounts": "被阻断的账号", "expiring_tokens": "即将过期的令牌", "approvals": "待审批",
    "duplicates": "可能重复", "nothing": "暂无内容。",
    "silent_feeds": "已沉寂的订阅源", "last_new_item": "最近新条目",
    "text": "正文", "link": "链接", "targets": "目标",
    "tags": "标签", "when": "时间", "at_time": "指定时间（你的时区）", "next_slot": "各账号的下一个时段",
    "now": "立即", "variants": "各平台的变体", "thread": "在支持的平台拆分为串文", "queue": "排入队列",
    "counters": "各平台", "limit": "上限", "problems": "问题", "queued": "稿件 {id} 已排入队列。",
    "not_queued": "未排入队列：{n} 个问题。", "status": "状态", "token_expiry": "令牌到期",
    "followers": "粉丝", "growth_7d": "7 天", "pause": "暂停", "resume": "恢复", "week": "{day} 这一周",
    "month": "{day} 起的一个月", "previous": "更早", "next": "更晚", "span": "显示", "span_week": "一周",
    "span_month": "一个月", "account_time": "账号当地时间", "your_time": "你的时间",
    "free": "空闲", "actor": "操作者", "action": "操作", "object": "对象", "change": "变更", "at": "时间",
    "older": "更早", "add_user": "添加用户", "roles": "角色（逗号分隔，如 editor@tag:en）", "disable": "停用",
    "disabled": "已停用", "tokens": "令牌", "create_token": "创建令牌", "token_name": "令牌名称",
    "days": "天数", "revoke": "吊销", "revoked": "已吊销", "expires": "到期",
    "secret_once": "请立即复制此令牌，之后不再显示：", "ready": "正常", "not_ready": "异常",
    "check": "检查项",
    "ok": "正常", "problem": "有问题", "forbidden": "无权操作", "error": "需要修正", "back": "返回",
    "done": "完成。", "user": "用户", "retried": "投递 {id} 将重试。", "resolved": "投递 {id} 已处理。",
    "approved": "稿件 {id} 已批准。", "rejected": "稿件 {id} 已驳回。", "signed_in_as": "当前用户：{name}",
    "wrong_login": "用户名或密码错误。", "chars": "{n} / {limit} {unit}", "skip": "跳到正文",
    "menu": "菜单", "author": "作者", "due": "到期", "count": "{n} 项", "thread_parts": "拆分为 {n} 条串文",
    "author_cannot_approve": "你是作者：须由其他审批人决定",
    "status_awaiting_approval": "待审批", "status_approved": "已批准", "status_rejected": "已驳回",
    "status_cancelled": "已取消",
    "followers_30d": "近 30 天粉丝数", "cancel_story": "取消稿件", "cancelled_story": "稿件 {id} 已取消。",
    "reconnect": "重新授权", "connect": "连接 {platform}", "connect_title": "连接 {platform} 账号",
    "handle": "{platform} 账号名",
    "connected": "账号 {id} 已连接。", "app_password": "应用专用密码（在 Bluesky 设置中创建）",
    "pds": "PDS 地址（不是 bsky.social 时填写）",
    "connect_continue_text": "crosspost 已在 {instance} 注册。请在那里以 {account} 登录并允许访问，"
                             "完成后会回到这里。",
    "connect_continue": "前往 {instance}", "connect_back": "返回账号列表",
    "instance": "实例地址（例如 https://mastodon.social）",
    "bot_token": "机器人令牌（来自 @BotFather；机器人须为频道管理员）",
    "move_story": "移动稿件", "moved": "稿件 {id} 已移动。",
    "media": "图片与视频", "image": "图片", "alt": "替代文字（图片内容）", "video": "视频",
    "slot": "账号的发布时段", "new_time": "或新时间（你的时区）",
    "followers_report": "矩阵报表", "group_by": "分组", "by_platform": "平台", "by_tag": "标签",
    "by_account": "账号", "group": "组", "stale": "近期未采样", "per_day": "每日（UTC）", "day": "日期",
    "webhooks": "Webhook", "events": "事件", "remove": "移除", "hook_log": "Webhook 日志",
    "tries": "尝试次数", "last_answer": "最后应答", "add_webhook": "添加 Webhook",
}

# Editing from the dashboard, the grid's live refresh, the compose preview, a user's notifications.
EN.update({
    "edit_story": "Edit the story", "edit_text": "Edit this account's text",
    "edit_text_of": "Text for {account}", "text_for": "Text sent to {account}",
    "use_story_text": "Use the story's text again", "not_changed": "Not changed: {n} problem(s).",
    "time_keep": "Leave it as it is to keep the time.",
    "edit_started": "Some deliveries have started: the text can no longer change.",
    "edit_back_to_approval": "After an edit the story waits for an approver again.",
    "live_updates": "This grid updates itself as deliveries go out.", "preview": "Preview",
    "preview_of": "How it will look on {platform}", "part_of": "{i}/{n}", "no_alt": "no alt text",
    "avatar": "avatar of {account}", "notifications": "E-mail notifications", "email": "E-mail address",
    "notify_by_email": "Send me an e-mail when", "digest": "A daily digest of my desk (after 07:00 UTC)",
    "notifications_saved": "Notifications saved.",
    "event_approval.requested": "a story waits for approval",
    "event_approval.decided": "a story is approved or rejected",
    "event_delivery.published": "a delivery is published", "event_delivery.failed": "a delivery fails",
    "event_delivery.unknown": "it is unknown whether a delivery went out",
    "event_account.auth_broken": "an account needs re-authorising",
    "event_token.expiring": "a token expires soon", "event_worker.silent": "the workers fall silent",
    "new_stories": "New stories came in: show them", "variant_used": "its own variant",
    "and_more": "and {n} more",
    "mail_off": "No mail server is set up yet (smtp_url): nothing is sent until an administrator sets one.",
    "save_notifications": "Update notifications",
    "has_own_text": "{account} has a text of its own, which an edit of the story does not change.",
})
ZH.update({
    "edit_story": "编辑稿件", "edit_text": "编辑此账号的正文", "edit_text_of": "{account} 的正文",
    "text_for": "发往 {account} 的正文", "use_story_text": "改回稿件正文",
    "not_changed": "未修改：{n} 个问题。",
    "time_keep": "保持不变则不改时间。", "edit_started": "部分投递已开始：正文不能再修改。",
    "edit_back_to_approval": "修改后稿件需重新审批。", "live_updates": "投递进展会自动更新。",
    "preview": "预览",
    "preview_of": "在 {platform} 上的样子", "part_of": "{i}/{n}", "no_alt": "无替代文字",
    "avatar": "{account} 的头像", "notifications": "邮件通知", "email": "电子邮箱",
    "notify_by_email": "以下情况给我发邮件",
    "digest": "每日摘要（UTC 07:00 之后）", "notifications_saved": "通知设置已保存。",
    "event_approval.requested": "有稿件等待审批", "event_approval.decided": "稿件被批准或驳回",
    "event_delivery.published": "投递已发布", "event_delivery.failed": "投递失败",
    "event_delivery.unknown": "无法确定投递是否已发出", "event_account.auth_broken": "账号需要重新授权",
    "event_token.expiring": "令牌即将过期", "event_worker.silent": "工作进程没有响应",
    "new_stories": "有新稿件：点此显示", "variant_used": "使用该平台的变体", "and_more": "等另外 {n} 个账号",
    "mail_off": "尚未配置邮件服务器（smtp_url）：管理员配置之前不会发送邮件。",
    "save_notifications": "更新通知设置",
    "has_own_text": "{account} 有自己的正文，修改稿件不会改变它。",
})

CATALOGS = {"en": EN, "zh-Hans": ZH}
WEEKDAYS_ZH = "一二三四五六日"


def check(language: str | None) -> str:
    return language if language in LANGUAGES else DEFAULT


def translate(language: str, key: str, **values: object) -> str:
    text = CATALOGS[check(language)].get(key) or EN.get(key, key)
    return text.format(**values) if values else text


def when(language: str, moment: datetime | str | None, tz: str, *, date: bool = True,
         clock: bool = True) -> str:
    """A moment in ``tz`` as the language writes it: ``Mon 30 Nov 2026 19:05`` or
    ``2026年11月30日 周一 19:05``."""
    if not moment:
        return ""
    if isinstance(moment, str):  # the service layer's descriptions carry ISO strings
        moment = datetime.fromisoformat(moment)
    local = moment.astimezone(ZoneInfo(tz))
    if check(language) == "zh-Hans":
        day = f"{local.year}年{local.month}月{local.day}日 周{WEEKDAYS_ZH[local.weekday()]}"
    else:
        day = local.strftime("%a %d %b %Y")
    return " ".join(part for part, wanted in ((day, date), (local.strftime("%H:%M"), clock)) if wanted)


def short(language: str, moment: datetime | str | None, tz: str, today: datetime) -> str:
    """The clock alone for a moment on ``today`` (in ``tz``), the date too otherwise: "waiting until
    09:00" must not hide that it is next week."""
    if not moment:
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    zone = ZoneInfo(tz)
    same_day = moment.astimezone(zone).date() == today.astimezone(zone).date()
    return when(language, moment, tz, date=not same_day)


def day(language: str, iso: str) -> str:
    """A calendar day's heading: ``Mon 30 Nov`` or ``11月30日 周一``."""
    d = date.fromisoformat(iso)
    if check(language) == "zh-Hans":
        return f"{d.month}月{d.day}日 周{WEEKDAYS_ZH[d.weekday()]}"
    return d.strftime("%a %d %b")


def number(language: str, value: float | int | None) -> str:
    """Grouped digits; Chinese writes large counts in 万 (10,000), as its readers count them."""
    if value is None:
        return "–"
    if check(language) == "zh-Hans" and abs(value) >= 10_000:
        return f"{value / 10_000:,.1f}万".replace(".0万", "万")
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"
