"""Example prompts that routes described in a few words borrow, and which route borrows which:
the task types people route on (here) and the domains they route on (library_domains.py).

A route described as "generating new code, writing functions" has two phrases to match, and a
prompt such as "make me a Svelte dropdown that filters as you type" is close to
neither: it names no function and says "build", not "generate". Example prompts close that gap
(measured: ten examples per route lift terse descriptions by about 20 points), but few users
write them. So a route whose description reads like one of the task types below, or one of
the domains, borrows that type's examples (lenders() decides which, by embedding similarity
of the route's phrases to the type's signatures; router.py scores them).

The prompts were written for Plano, to cover each task the way people ask for it: many
languages and domains, questions and imperatives, short and long, polite and blunt. They are
not taken from any evaluation set; keep it that way (bench/router_embedded.py reports on sets
this file was never written from).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from proxy.routing.embedded.library_domains import DOMAINS
from proxy.routing.embedded.task_type import TaskType

Embed = Callable[[Sequence[str]], np.ndarray]  # unit-norm rows

# A route borrows a type's examples when one of its own phrases is this close to one of the
# type's signatures (or its name): "code generation and debugging" is, for two task types;
# "cooking, recipes and restaurants", for two domains; "questions about medieval heraldry", for
# none. Measured on the shared CLINC descriptions and tasks_dev: 0.70 lends the same, 0.80
# loses the assistant-settings domain for a route about them and costs 0.8 points in scope.
# A route's closest type needs only CLOSEST_BORROW_SIMILARITY: routes in the first person or
# in a few words read less like any signature ("job, pay, time off, benefits" is 0.70 from
# workplace and HR). Measured on the CLINC dev files (tests/data/clinc150_routes_*_dev.yaml),
# with a type's name as a signature: +3.2 points in scope (terse, out-of-scope recall the
# same), +0.8 (first person, recall -2); shared descriptions and tasks_dev unchanged. 0.70 for
# every type lends a route described by one domain's signatures a second domain.
BORROW_SIMILARITY = 0.75
CLOSEST_BORROW_SIMILARITY = 0.70


TASK_TYPES: tuple[TaskType, ...] = (
    TaskType(
        "code generation",
        (
            "code generation",
            "writing code",
            "generating new code",
            "programming",
            "writing functions, classes and scripts",
            "software development",
            "coding tasks",
        ),
        (
            "Write a function in TypeScript that deep-merges two objects",
            "Implement a rate limiter with a token bucket in Java",
            "Flask: accept a file upload and store it in S3",
            "Write a SQL view that joins orders to shipments and flags late deliveries",
            "Write a Go program that tails a log file and counts lines per minute",
            "I need a Vue page with a paginated list and a search box",
            "Generate a docker-compose file with Postgres, Redis and a worker service",
            "Write Jest tests for a shopping cart reducer",
            "Code a simple tic-tac-toe game in C++ for the terminal",
            "Implement Dijkstra's shortest path algorithm in Kotlin",
            "Write a regular expression that pulls ISO timestamps out of a log line",
            "Create a GitHub Actions workflow that runs lint and tests on every push",
            "Write a shell one-liner that finds the ten largest files under a directory",
            "Make a Swift struct for a user profile that decodes from JSON",
            "Write a C function that computes a CRC32 checksum of a buffer",
            "Scaffold an Express.js server with JWT authentication middleware",
            "Implement merge sort in Haskell",
            "Write a Terraform module that creates a private S3 bucket",
            "Add a command-line flag parser to this Python script using argparse",
            "Write a PowerShell script to back up a folder to a network drive every night",
            "Create a Django model for blog posts with tags and comments",
            "Write an async Rust function that fetches several URLs concurrently",
            "Generate a Kubernetes deployment manifest with a readiness probe",
            "Write a Python dataclass for an inventory item with validation of negative stock",
        ),
    ),
    TaskType(
        "debugging",
        (
            "debugging",
            "fixing bugs in code",
            "explaining error messages and stack traces",
            "code review",
            "troubleshooting code that does not work",
        ),
        (
            "The cron job silently stops after midnight and leaves no logs, where do I look?",
            "My React component re-renders forever, what am I doing wrong?",
            "Fix this segmentation fault in my C code when I free the list",
            "I get 'undefined is not a function' in the browser console, help",
            "This SQL query returns duplicate rows, how do I fix it?",
            "The Java build fails with NoClassDefFoundError at runtime",
            "Review this pull request diff and point out bugs",
            "My Go program deadlocks when the channel is full, why?",
            "npm install fails with ERESOLVE unable to resolve dependency tree",
            "Why is my regex not matching the last line of the file?",
            "The Docker container exits immediately with code 137",
            "My unit test passes locally but fails in CI, how do I debug it?",
            "Explain this stack trace and tell me where the null pointer comes from",
            "The Rust borrow checker complains that the value was moved, how do I fix it?",
            "My pandas merge drops rows it should keep",
            "This async function never resolves, can you spot the problem?",
        ),
    ),
    TaskType(
        "math",
        (
            "math problems",
            "mathematics",
            "arithmetic, algebra and calculus",
            "solving equations",
            "probability and statistics problems",
            "math word problems",
        ),
        (
            "Find x when 5(x - 2) = 3x + 4",
            "Differentiate e^(2x) * ln(x)",
            "Integrate 1/(1 + x^2) from 0 to 1",
            "Drawing two cards without replacement, what are the odds both are hearts?",
            "Two pipes fill a tank in 6 and 9 hours. How long do they take together?",
            "Expand (2x - 3)^3",
            "What is 17% of 340?",
            "Compute the determinant of a 3x3 matrix with rows 1 2 3, 0 1 4, 5 6 0",
            "Show that the product of two odd numbers is odd",
            "What is the remainder when 7^100 is divided by 5?",
            "Simplify (a^2 - b^2) / (a - b)",
            "What is the least common multiple of 12, 18 and 30?",
            "Convert 0.375 to a fraction in lowest terms",
            "A ladder 5 m long leans on a wall with its foot 3 m out. How high does it reach?",
            "What is the limit of (1 + 1/n)^n as n goes to infinity?",
            "What is the median and the mean of 3, 9, 9, 14, 20?",
            "Solve the system 2x + y = 7 and x - y = 2",
            "What is the volume of a cone 10 cm tall with a 4 cm radius?",
        ),
    ),
    TaskType(
        "reasoning and analysis",
        (
            "complex reasoning",
            "multi-step reasoning",
            "detailed analysis",
            "analyzing trade-offs and making decisions",
            "logic puzzles",
            "planning and strategy",
            "in-depth explanations of hard problems",
        ),
        (
            "Compare the pros and cons of SQL and NoSQL databases for an analytics product",
            "Analyze the risks of expanding our startup into a new country next year",
            "Walk me through how you would design a URL shortener that scales to millions of users",
            "Should we rewrite our legacy system or refactor it incrementally? Weigh both options",
            "Three boxes are labeled wrong; how can you fix all labels by opening one box?",
            "Is it cheaper over five years to rent servers or to run on a cloud provider?",
            "What are the second-order effects of a four-day work week on a company?",
            "Explain step by step why the Roman Republic turned into an empire",
            "Plan the move of our billing data to a new database, with the risks at each step",
            "Assess whether raising prices by 10% would increase our revenue given elastic demand",
            "A farmer must ferry a wolf, a goat and a cabbage across a river; "
            "work out the crossings",
            "Break down the causes of the 2008 financial crisis and how they interacted",
            "Critically compare two approaches to caching in a distributed system",
            "Think through the ethical implications of using facial recognition in schools",
            "Help me decide between two job offers by weighing salary, growth and location",
            "Outline a strategy to reduce customer churn and justify each step",
        ),
    ),
    TaskType(
        "creative writing",
        (
            "creative writing",
            "stories, poems and song lyrics",
            "fiction and storytelling",
            "writing poetry",
            "brainstorming creative ideas",
        ),
        (
            "Write a short story about a retired astronaut who opens a bakery",
            "Compose a haiku about a cracked teacup",
            "Write a chorus for a country song about a broken-down pickup truck",
            "Give me a limerick about a forgetful wizard",
            "Write the opening paragraph of a sci-fi novel set on a generation ship",
            "Write a sonnet about losing and finding hope",
            "Create a bedtime story for a toddler about a cloud that is afraid of thunder",
            "Script a tense phone call between two estranged sisters",
            "Invent a fairy tale where the dragon is the hero",
            "Write an ode to an old pair of hiking boots",
            "Come up with a plot twist for my fantasy novel",
            "Write a sea shanty about debugging on a Friday night",
            "Describe a haunted house in vivid, spooky prose",
            "Write a flash fiction piece of exactly 100 words about time travel",
            "Give me five creative names and a backstory for a pirate crew",
            "Write a eulogy for a houseplant, played for laughs",
        ),
    ),
    TaskType(
        "summarization",
        (
            "summarization",
            "summarizing text",
            "condensing documents into key points",
            "tl;dr of articles and reports",
        ),
        (
            "Give me the main points of this article as a short bulleted list",
            "Give me a TL;DR of the meeting notes below",
            "Condense this report into one paragraph for executives",
            "What are the key takeaways from this research paper abstract?",
            "Shorten this email thread into a brief recap",
            "Summarize the plot of the text I pasted in two sentences",
            "Condense these terms and conditions to the parts that affect me",
            "Write a one-line summary of each section of this document",
            "Recap the main arguments in this opinion piece",
            "Give me the gist of this long customer review",
            "Summarize the following lecture notes for a student who missed class",
            "Make an executive summary of these quarterly results",
        ),
    ),
    TaskType(
        "translation",
        (
            "translation",
            "translating text between languages",
            "translating into another language",
            "language translation",
        ),
        (
            "Translate 'the invoice is attached' into Dutch",
            "How do I say 'my flight was cancelled' in Spanish?",
            "Translate this paragraph from Spanish to English",
            "What does the German word 'Fernweh' mean in English?",
            "Put this product description into French",
            "Rewrite this announcement in Swedish for our Stockholm office",
            "How would I ask for the bill in Vietnamese?",
            "Render this English sentence in Portuguese: the meeting is postponed",
            "Translate these subtitles into Korean",
            "What is the Chinese word for 'library'?",
            "Translate 'good morning, how are you' into Arabic",
            "Turn this Polish menu into English for me",
        ),
    ),
    TaskType(
        "extraction",
        (
            "information extraction",
            "extracting structured data from text",
            "pulling names, dates and fields out of documents",
            "parsing text into JSON",
        ),
        (
            "Extract all email addresses from the text below",
            "Pull the invoice number, date and total from this invoice",
            "List every person and company mentioned in this article",
            "Turn this resume into JSON with name, skills and experience",
            "Find all the dates mentioned in this contract",
            "Extract the ingredients and quantities from this recipe as a table",
            "Get the product names and prices out of this order confirmation",
            "Identify the sender, recipient and subject of each email in this dump",
            "Parse these log lines into timestamp, level and message fields",
            "Extract the key entities and their relationships from this paragraph",
            "Which phone numbers and addresses appear in this document?",
            "Convert this unstructured address list into CSV columns",
        ),
    ),
    TaskType(
        "chit-chat",
        (
            "chit-chat",
            "small talk",
            "casual conversation",
            "chatting with you",
            "questions about you",
            "greetings and jokes",
        ),
        (
            "Heya! What's new with you?",
            "Good morning!",
            "Make me laugh with a pun",
            "Having a good day so far?",
            "Cheers, you saved me a lot of time",
            "Which season do you like best?",
            "I'm bored, talk to me",
            "Do you like music?",
            "Alright, I'm off to bed. Bye for now",
            "You're pretty funny",
            "What have you been up to?",
            "Tell me something interesting",
            "Pleased to make your acquaintance",
            "Do you ever get tired of talking?",
            "See you later!",
            "Can we just chat for a bit?",
            "Did a big tech company make you?",
            "Are you a real person or a program?",
            "What do you get up to when nobody is talking to you?",
            "What would you do on a day off, if you had one?",
            "Where do you live, in the cloud?",
            "Do you dream?",
            "Hey, anybody home?",
            "Hey hey, long time no see",
            "Thanks a bunch, that did the trick",
            "Thanks, that's all",
            "Catch you tomorrow",
            "Know any knock-knock jokes?",
            "Are you human?",
            "Blue or green, which do you prefer?",
            "Were you built recently or have you been around for years?",
            "Hope your evening is going well",
            "Who made you?",
            "Do you have feelings?",
            "Do you have a sense of humor?",
            "Tell me a fun fact",
            "What's the most fun part of being an assistant?",
            "I really appreciate your help",
            "Nice chatting, I have to run now",
            "What's your favorite food?",
            "Is there a person typing these answers?",
            "Where are you from?",
        ),
    ),
    TaskType(
        "general questions",
        (
            "simple questions",
            "general knowledge questions",
            "quick factual questions",
            "trivia",
            "everyday questions",
        ),
        (
            "What is the capital city of Kenya?",
            "Who composed the Four Seasons?",
            "How many continents are there?",
            "How many strings does a standard violin have?",
            "What is the tallest mountain in Europe?",
            "What gas do plants take in from the air?",
            "Who is the author of One Hundred Years of Solitude?",
            "What is the chemical symbol for gold?",
            "What year did the first iPhone come out?",
            "Which ocean is the largest?",
            "What does a koala eat?",
            "How long is a marathon?",
        ),
    ),
)

# What routes borrow from: the task types above and the domains of library_domains.py.
LIBRARY: tuple[TaskType, ...] = TASK_TYPES + DOMAINS
DOMAIN_NAMES = frozenset(kind.name for kind in DOMAINS)

__all__ = [
    "BORROW_SIMILARITY",
    "DOMAINS",
    "LIBRARY",
    "TASK_TYPES",
    "RoutePhrases",
    "TaskType",
    "lenders",
    "route_similarity",
]


@dataclass(frozen=True, slots=True)
class RoutePhrases:
    """A route's words, as lenders() reads them.

    whole: what says what the route is (its name, description and the head of the
    description); items: what it lists and its example prompts.
    """

    whole: tuple[str, ...]
    items: tuple[str, ...] = ()


def _signatures(kind: TaskType) -> tuple[str, ...]:
    """A type's signatures and its name: a terse route that says "assistant settings" names
    the domain itself (measured: +3.0 points in scope on the terse CLINC dev file, out-of-scope
    recall -1; the first-person one, the shared descriptions and tasks_dev unchanged)."""
    return kind.signatures if kind.name in kind.signatures else (kind.name, *kind.signatures)


def type_similarity(
    phrases: Sequence[str], embed: Embed, library: Sequence[TaskType] = LIBRARY
) -> np.ndarray:
    """(types,) how close a route's closest phrase comes to each type's signatures."""
    per_kind = np.full(len(library), -1.0)
    if not phrases:
        return per_kind
    named = [_signatures(kind) for kind in library]
    signatures = [sig for sigs in named for sig in sigs]
    kind_of = np.repeat(np.arange(len(library)), [len(sigs) for sigs in named])
    sims = embed(list(phrases)) @ embed(signatures).T
    np.maximum.at(per_kind, kind_of, sims.max(axis=0))
    return per_kind


def route_similarity(
    route: RoutePhrases, embed: Embed, library: Sequence[TaskType] = LIBRARY
) -> np.ndarray:
    """(types,) how well a route reads like each type, as lenders() judges it.

    A route described by a task ("summarizing a given text, article, email or document")
    lists the material the task works on, not what it is about: its items do not make it an
    email route. So when the route's whole words already read like a task type, domains are
    matched on those words alone; task types, and domains of a route that names no task, on
    every phrase.
    """
    whole = type_similarity(route.whole, embed, library)
    items = type_similarity(route.items, embed, library)
    domain = np.asarray([kind.name in DOMAIN_NAMES for kind in library], dtype=bool)
    names_a_task = bool((whole[~domain] >= BORROW_SIMILARITY).any())
    usable = ~domain | (not names_a_task)
    return np.where(usable, np.maximum(whole, items), whole)


def lenders(
    routes: Sequence[RoutePhrases], embed: Embed, library: Sequence[TaskType] = LIBRARY
) -> dict[int, list[int]]:
    """{route position: [type positions]}: which types lend to which route of a set.

    A type lends to the one route that matches it best, so two routes of a set never share
    the same examples.
    """
    if not library:
        return {}
    best = np.full(len(library), -1.0)
    lender: dict[int, int] = {}
    for route, phrases in enumerate(routes):
        if not phrases.whole and not phrases.items:
            continue
        per_kind = route_similarity(phrases, embed, library)
        needed = np.full(len(library), BORROW_SIMILARITY)
        needed[int(np.argmax(per_kind))] = CLOSEST_BORROW_SIMILARITY
        # A type goes to the route closest to it, and only if close enough for that route.
        for kind in np.flatnonzero(per_kind > best):
            best[kind] = per_kind[kind]
            if per_kind[kind] >= needed[kind]:
                lender[int(kind)] = route
            else:
                lender.pop(int(kind), None)
    out: dict[int, list[int]] = {}
    for kind, route in sorted(lender.items()):
        out.setdefault(route, []).append(kind)
    return out
