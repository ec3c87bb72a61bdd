"""The words tool search knows without a model: words that carry no meaning in a request,
and groups of words people use for one thing (:mod:`patchwire.tools._search`).

Data only, kept here so the ranking code holds no word lists. A synonym group's members
may be phrases ("money back"): a phrase in a request stands for its group's words; each
single-word member of a group stands for every other one, at a lower weight than the
word the person wrote (tool texts are indexed as words, so phrases are only recognised in
requests). Groups are written from how people ask bots
for things, not from any connector's descriptions; a connector adds its own words with
``catalog.synonyms`` in its file.
"""

from __future__ import annotations

from typing import Final

__all__ = ["EVERYDAY_NAMES", "FIND_CUES", "INTENTS", "IRREGULAR", "MENTION_CUES", "MESSAGE_CUES",
           "MESSAGE_VERBS", "MODIFIERS", "NEGATIONS", "NEVER_A_NAME",
           "OPENING_VERBS", "PREFACE", "QUESTION_WORDS",
           "READ_OBJECTS", "SENDING_VERBS", "STOPWORDS", "SYNONYM_GROUPS"]

def _word_set(text: str) -> frozenset[str]:
    """The words of ``text`` (lists of words are kept as text: easier to read and edit)."""
    return frozenset(text.split())


#: words that say nothing of which tool is meant ("can you please show me my ...")
_STOPWORDS_TEXT: Final = """
a about after all also am an and any are as at be been before being but by can could did
do does doing for from had has have having he her here hers him his how i if in into is it
its just me mine my myself no nor not of off on once one only or our ours out over own
please same she should so some such than that the their theirs them then there these they
this those through to too under until up very was we were what when where which while who
whom why will with would you your yours yourself hey hi thanks thank kindly need want
wanna like let lets quick quickly right now currently possible via using use us yet
still actually really maybe s t d m ve re ll give gives gave given giving many much
whats thats dont im ive youre theyre isnt arent wasnt werent didnt doesnt cant couldnt
wont wouldnt shouldnt heres theres wheres hows whens whys weve theyve youve hes shes
"""
STOPWORDS: Final[frozenset[str]] = frozenset(_STOPWORDS_TEXT.split())

#: everyday words that are also the name (or a name's first word) of a service: such a
#: word names the service only when written as a name (capitalised, or after a word of
#: :data:`MENTION_CUES`): "close the ticket" is not about Close, "the lead in Close" is
EVERYDAY_NAMES: Final[frozenset[str]] = _word_set("""
box close copper front harvest kit linear notion paddle sentry square wave wise help lemon
customer cal x discord teams drive sign track basecamp greenhouse
""")
#: words before a service's name that say "in that service" ("on wise", "in sentry")
MENTION_CUES: Final[frozenset[str]] = _word_set(
    "in on from via into using through at inside onto within")
#: days and months: a service named like one is named only by its full name
#: ("monday.com"), never by the day alone
NEVER_A_NAME: Final[frozenset[str]] = _word_set("""
monday tuesday wednesday thursday friday saturday sunday january february march april may
june july august september october november december
""")

#: irregular forms a suffix rule cannot reach, as the word tool texts use
IRREGULAR: Final[dict[str, str]] = {
    "paid": "pay", "sent": "send", "bought": "buy", "sold": "sell", "made": "make",
    "gave": "give", "given": "give", "wrote": "write", "written": "write", "spent": "spend",
    "met": "meet", "got": "get", "gotten": "get", "took": "take", "taken": "take",
"kept": "keep", "told": "tell", "said": "say", "found": "find",
    "began": "begin", "begun": "begin", "chose": "choose", "chosen": "choose",
    "drew": "draw", "drawn": "draw", "froze": "freeze", "frozen": "freeze",
    "held": "hold", "lost": "lose", "ran": "run", "saw": "see", "seen": "see",
    "shown": "show", "shut": "shut", "stole": "steal", "stolen": "steal", "won": "win",
    "children": "child", "people": "person", "men": "man", "women": "woman",
}

#: groups of words and phrases that name the same thing in a request
SYNONYM_GROUPS: Final[tuple[tuple[str, ...], ...]] = (
    # money
    ("refund", "money back", "reimburse", "give back", "pay back", "return money"),
    ("payment", "charge", "transaction", "paid", "pay", "purchase", "takings"),
    ("point of sale", "pos", "till", "cash register", "card reader", "card terminal"),
    ("exchange rate", "rate", "currency", "currencies", "exchange", "convert", "conversion", "fx",
     "peso", "pesos", "yen", "rupee", "rupees", "franc", "francs", "forex"),
    ("invoice", "bill", "billing", "statement"),
    ("subscription", "plan", "membership", "renewal"),
    ("price", "cost", "amount", "total", "fee"),
    ("balance", "funds", "money available", "cash", "cash on hand"),
    ("payout", "transfer", "withdraw", "withdrawal", "deposit"),
    ("discount", "coupon", "promo", "promotion", "voucher", "promo code"),
    ("expense", "spend", "spending", "reimbursement"),
    ("receipt", "proof of payment"),
    ("dispute", "chargeback", "claim", "contested"),
    ("profit", "loss", "p&l", "revenue", "income", "earnings", "turnover"),
    ("payroll", "salary", "salaries", "wages", "payslip", "pay run"),
    ("vendor", "supplier", "suppliers"),
    # commerce
    ("order", "purchase", "checkout", "cart"),
    ("product", "item", "sku", "goods", "merchandise", "listing"),
    ("inventory", "stock", "quantity", "in stock", "available"),
    ("shipping", "shipment", "delivery", "fulfillment", "fulfilment", "ship", "tracking",
     "track", "dispatch", "parcel", "package"),
    ("customer", "client", "buyer", "shopper", "consumer", "patron"),
    # people and organisations
    ("contact", "person", "people", "lead", "prospect"),
    ("company", "organization", "organisation", "org", "business", "firm", "account"),
    ("deal", "opportunity", "sale", "pipeline"),
    ("user", "member", "teammate", "colleague", "staff", "agent", "employee", "coworker"),
    ("employee", "staff", "worker", "hire", "personnel"),
    ("subscriber", "recipient", "audience", "mailing list"),
    ("invite", "invitation", "add member"),
    ("subscribe", "sign up", "signup", "opt in", "join", "enroll", "enrol", "register"),
    ("unsubscribe", "opt out", "take me off", "stop sending", "stop emailing"),
    # support
    ("ticket", "issue", "case", "incident", "request", "support request", "complaint",
     "conversation"),
    ("bug", "defect", "issue", "problem", "error", "exception", "crash", "glitch"),
    ("incident", "outage", "alert", "paging", "on call", "on-call", "downtime", "pager"),
    ("acknowledge", "ack", "acknowledged"),
    ("review", "rating", "ratings", "stars", "feedback", "testimonial"),
    ("approve", "sign off", "greenlight", "okay it", "accept"),
    ("reaction", "react", "emoji", "thumbs up"),
    ("verification", "verify", "otp", "login code", "one-time code", "2fa", "two-factor",
     "confirmation code"),
    ("form", "survey", "questionnaire", "poll"),
    ("response", "answers", "submissions", "submission", "replies"),
    ("quote", "estimate", "proposal", "quotation"),
    ("candidate", "applicant", "application", "job seeker"),
    ("job", "position", "vacancy", "role", "job posting", "job opening"),
    ("close", "resolve", "resolved", "solve", "solved", "done", "complete", "finish",
     "mark done", "tick off", "check off", "mark as done", "mark complete"),
    ("reopen", "open again"),
    ("comment", "reply", "respond", "response", "answer", "note", "write back",
     "leave a note", "leave a comment", "add a note"),
    ("note", "jot down", "write down", "memo", "log a note"),
    ("assign", "reassign", "hand over", "give to", "assignee", "owner"),
    ("priority", "urgent", "urgency", "severity"),
    ("status", "state", "progress", "stage"),
    # scheduling
    ("meeting", "event", "appointment", "booking", "call", "session", "calendar entry"),
    ("book", "schedule", "reserve", "set up", "arrange"),
    ("availability", "available", "free", "busy", "slot", "free time", "open slot",
     "free slot"),
    ("calendar", "agenda", "schedule", "diary"),
    ("reschedule", "move", "postpone", "change time"),
    ("time off", "leave", "vacation", "holiday", "pto", "absence", "absent", "out of office",
     "out of the office", "ooo", "off sick", "sick leave", "day off", "days off"),
    ("due", "deadline", "due date"),
    ("upcoming", "coming up", "planned", "scheduled"),
    ("activity", "history", "timeline", "happened", "what happened", "audit log"),
    ("participant", "attendee", "attendees", "attended", "attend", "show up", "showed up",
     "turned up", "joined"),
    ("assigned", "assignee", "on my plate", "assigned to me", "my work"),
    ("time entry", "timer", "timesheet", "hours", "time tracking", "track time",
     "logged time", "clock in", "billable"),
    # messaging
    ("message", "post", "send", "chat", "dm", "direct message", "write", "say", "tell",
     "notify", "ping", "announce"),
    ("email", "mail", "e-mail", "inbox"),
    ("sms", "text", "text message"),
    ("phone", "call", "dial", "ring"),
    ("channel", "room", "group", "conversation", "thread"),
    ("campaign", "newsletter", "blast", "broadcast", "mailing"),
    ("template", "draft"),
    # work tracking
    ("task", "todo", "to-do", "to do", "card", "story", "action item", "work item",
     "reminder", "remind me"),
    ("project", "board", "workspace", "space"),
    ("repository", "repo", "codebase"),
    ("pull request", "pr", "merge request", "mr"),
    ("label", "tag", "category"),
    ("sprint", "iteration", "cycle"),
    ("milestone", "release", "version"),
    ("deploy", "deployment", "redeploy", "go live", "rollout", "roll out", "ship it"),
    ("build", "pipeline", "ci", "test run", "workflow run", "checks"),
    ("rollback", "roll back", "revert", "undo the deploy"),
    # files and documents
    ("file", "document", "doc", "attachment", "upload"),
    ("folder", "directory"),
    ("image", "photo", "picture", "pic", "screenshot"),
    ("video", "clip", "recording"),
    ("song", "track", "tune", "music", "playing"),
    ("playlist", "mixtape"),
    ("page", "note", "wiki", "doc", "document"),
    ("spreadsheet", "sheet", "table", "row"),
    ("share", "permission", "access", "give access"),
    ("signature", "sign", "esign", "e-sign", "envelope"),
    ("contract", "agreement", "nda"),
    ("server", "droplet", "vm", "virtual machine", "instance"),
    # verbs
    ("find", "search", "look up", "lookup", "look for", "locate", "query", "mention",
     "mentions", "containing", "somewhere", "look through", "dig up"),
    ("read", "say", "says", "saying", "content", "contents", "what it says"),
    ("show", "view", "display", "see", "get", "fetch", "retrieve", "read", "check"),
    ("list", "every", "recent", "latest"),
    ("statistics", "how many", "metrics", "analytics"),
    ("create", "add", "new", "make", "open", "start", "submit", "log", "raise", "file"),
    ("update", "change", "edit", "modify", "rename", "correct"),
    ("delete", "remove", "erase", "trash", "destroy", "get rid of"),
    ("cancel", "stop", "terminate", "end", "unsubscribe", "revoke", "void"),
    ("archive", "hide", "shelve"),
    ("pause", "on hold", "put on hold", "freeze", "suspend"),
    ("resume", "unpause", "reactivate", "restart", "pick up again"),
    ("copy", "duplicate", "clone"),
    ("forward", "pass on", "send on"),
    ("favorite", "favourite", "star", "starred", "bookmark"),
    ("mute", "snooze", "silence"),
    ("unread", "mark as read", "mark read", "seen"),
    ("upload", "attach", "add file"),
    ("download", "export", "save"),
)

#: what a request asks done, by the verb that says it, and what an action does, by the
#: verb its name starts with (``create_issue``, ``list_events``): a request to look
#: something up prefers tools that read, a request to make something tools that make it.
#: Phrases ("take me off") are recognised in requests.
INTENTS: Final[dict[str, tuple[str, ...]]] = {
    "read": ("get", "list", "show", "view", "fetch", "retrieve", "read", "look", "check",
             "see", "browse", "count", "report", "filter", "pull up", "catch up",
             "catch me up", "tell me", "whos", "download", "export", "track"),
    # looking for something whose place or id the person does not know
    "find": ("find", "search", "query", "lookup", "look up", "look for", "look through",
             "dig up", "locate", "where did i put", "hunt for"),
    "make": ("create", "add", "new", "make", "post", "send", "message", "dm", "text",
             "email", "write", "compose", "draft", "reply", "respond", "comment", "book",
             "schedule", "log", "record", "save", "open", "raise", "submit", "upload",
             "invite", "share", "publish", "append", "insert", "note", "jot", "jot down",
             "tell", "notify", "ping", "announce", "buy", "forward", "resend", "repost",
             "start", "trigger", "subscribe", "remind", "tag", "copy", "leave a note"),
    "change": ("update", "change", "edit", "modify", "set", "move", "mark", "rename",
               "assign", "reassign", "transition", "reschedule", "complete", "close",
               "resolve", "finish", "tick off", "check off", "bump", "approve", "pause",
               "resume", "hold", "snooze", "reopen", "advance", "merge", "restore",
               "reactivate", "acknowledge", "reject", "pin", "skip"),
    "remove": ("delete", "remove", "erase", "trash", "destroy", "get rid of", "cancel",
               "stop", "terminate", "unsubscribe", "opt out", "take me off", "void",
               "revoke", "archive", "clear", "expire"),
    "refund": ("refund", "reimburse", "reverse", "money back", "give back", "pay back"),
}

#: words that only narrow a request (when, which one, how often): they filter the answer,
#: they do not say which tool gives it ("the *last* invoice", "who's off *next week*")
MODIFIERS: Final[frozenset[str]] = _word_set("""
last next previous prior earliest today tonight tomorrow yesterday morning afternoon
evening night noon midnight week weeks month months year years day days again already
twice ever soon later earlier lately ago before after since between during within
weekend weekday monday tuesday wednesday thursday friday saturday sunday
""")

#: verbs that send something said (a message, a comment, a note), and the words after
#: which what is said follows ("tell Ana *that* the table is ready", "note *saying* ...")
MESSAGE_VERBS: Final[frozenset[str]] = _word_set("""
text texts email mail message dm tell ping notify post reply respond write comment note
say remind announce know let sms whatsapp
""")
MESSAGE_CUES: Final[frozenset[str]] = _word_set("that saying says reading")

#: channels people use as verbs ("email the invoice", "text Ana"): such a request asks
#: for something to be sent that way
SENDING_VERBS: Final[frozenset[str]] = _word_set("email mail text message dm sms whatsapp fax")

#: in a question, words that say the person is looking for something ("is there already
#: an issue about...", "is it somewhere in our repos"): a search, not a read
FIND_CUES: Final[frozenset[str]] = _word_set("""
already somewhere anywhere exists exist mention mentions mentioning containing contains
""")

#: things that already exist and are read when "opened" ("open that email", "open the
#: attachment"), where "open a ticket" makes one
READ_OBJECTS: Final[frozenset[str]] = _word_set("""
email emails mail message messages attachment attachments file files pdf document
documents doc docs link inbox letter invoice receipt
""")

#: words that are a verb only when a request opens with them ("*file* an issue", but
#: "the file"), and what they ask
OPENING_VERBS: Final[dict[str, str]] = {"file": "make"}

#: words that deny the verb after them ("I *can't* make it"): it is not what is asked
NEGATIONS: Final[frozenset[str]] = _word_set("""
not cant cannot dont doesnt didnt wont wouldnt couldnt shouldnt never isnt arent wasnt
""")

#: words a request opens with that ask a question: it wants something looked up
QUESTION_WORDS: Final[frozenset[str]] = _word_set("""
what whats which who whos whom whose where wheres when how hows why is are was were has
have had did does do any anything anyone
""")

#: words before a request's verb that say nothing of what is asked ("can you please")
PREFACE: Final[frozenset[str]] = _word_set("""
please pls kindly hey hi hello ok okay so just can could would will you u i we id ill
need want wanna gotta go ahead and then also quickly now to lets let us me help im ive
weve
""")
