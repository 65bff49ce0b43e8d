"""Example prompts for the task types people route on, for routes described in a few words.

A route described as "generating new code, writing functions" has two phrases to match, and a
prompt such as "make me a Svelte dropdown that filters as you type" is close to
neither: it names no function and says "build", not "generate". Example prompts close that gap
(measured: ten examples per route lift terse descriptions by about 20 points), but few users
write them. So a route whose description reads like one of the task types below borrows that
type's examples (router.py decides which, by embedding similarity to the type's signature).

The prompts were written for Plano, to cover each task the way people ask for it: many
languages and domains, questions and imperatives, short and long, polite and blunt. They are
not taken from any evaluation set; keep it that way (bench/router_embedded.py reports on sets
this file was never written from).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TaskType:
    """A kind of request: how route descriptions name it, and prompts that ask for it."""

    name: str
    signatures: tuple[str, ...]  # phrases a route description about this type would use
    examples: tuple[str, ...]


LIBRARY: tuple[TaskType, ...] = (
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
            "Implement an LRU cache class in Java",
            "Flask: accept a file upload and store it in S3",
            "Write a SQL view that joins orders to shipments and flags late deliveries",
            "Write a Go program that tails a log file and counts lines per minute",
            "I need a Vue page with a paginated list and a search box",
            "Generate a Dockerfile for a Node.js app with a multi-stage build",
            "Write unit tests with pytest for a function that parses dates",
            "Code a simple tic-tac-toe game in C++ for the terminal",
            "Implement Dijkstra's shortest path algorithm in Kotlin",
            "Write a regex that matches US zip codes, with or without the +4 suffix",
            "Create a GitHub Actions workflow that runs lint and tests on every push",
            "Write a shell one-liner that finds the ten largest files under a directory",
            "Make a Swift struct for a user profile that decodes from JSON",
            "Write a C function that reverses a linked list in place",
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
            "Why does my Python script raise KeyError: 'id' on the second loop?",
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
            "Solve for x: 3x + 7 = 25",
            "Differentiate e^(2x) * ln(x)",
            "Integrate 1/(1 + x^2) from 0 to 1",
            "Drawing two cards without replacement, what are the odds both are hearts?",
            "Two pipes fill a tank in 6 and 9 hours. How long do they take together?",
            "Expand (2x - 3)^3",
            "What is 17% of 340?",
            "Compute the determinant of a 3x3 matrix with rows 1 2 3, 0 1 4, 5 6 0",
            "Show by induction that 1 + 2 + ... + n = n(n+1)/2",
            "How many ways can 5 people sit around a round table?",
            "Simplify (a^2 - b^2) / (a - b)",
            "What is the least common multiple of 12, 18 and 30?",
            "Convert 0.375 to a fraction in lowest terms",
            "A ladder 5 m long leans on a wall with its foot 3 m out. How high does it reach?",
            "What is the limit of (1 + 1/n)^n as n goes to infinity?",
            "Compute the standard deviation of 4, 8, 15, 16, 23, 42",
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
            "Reason through this: if all bloops are razzies and some razzies are lazzies, "
            "are some bloops lazzies?",
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
            "Create a bedtime story for a five-year-old about a brave little turtle",
            "Write a dialogue between a detective and a suspect in a noir style",
            "Invent a fairy tale where the dragon is the hero",
            "Write a free-verse poem about city lights at night",
            "Come up with a plot twist for my fantasy novel",
            "Write a rap verse about coffee in the morning",
            "Describe a haunted house in vivid, spooky prose",
            "Write a flash fiction piece of exactly 100 words about time travel",
            "Give me five creative names and a backstory for a pirate crew",
            "Write a love letter from the moon to the sea",
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
            "Boil this legal document down to what I actually need to know",
            "Write a one-line summary of each section of this document",
            "Recap the main arguments in this opinion piece",
            "Give me the gist of this long customer review",
            "Summarize the following transcript of a podcast episode",
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
            "How would I say 'I am allergic to peanuts' in Thai?",
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
            "chatting with the assistant",
            "greetings and jokes",
        ),
        (
            "Hi there, how's it going?",
            "Good morning!",
            "Tell me a joke",
            "How is your day going?",
            "Thanks, that was really helpful",
            "What's your favorite movie?",
            "I'm bored, talk to me",
            "Do you like music?",
            "Goodnight, talk to you tomorrow",
            "You're pretty funny",
            "What have you been up to?",
            "Tell me something interesting",
            "Nice to meet you",
            "Do you ever get tired of talking?",
            "See you later!",
            "Can we just chat for a bit?",
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
            "Who painted the Mona Lisa?",
            "How many continents are there?",
            "When did World War II end?",
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
