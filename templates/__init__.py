"""The Jinja2 templates, shipped inside the wheel as this package's data.

``emails/<name>/{subject.txt,body.txt,body.html}`` (``adapters.mailer``) and ``ops/*.html`` (the ops
dashboard). Code finds them through this package (``adapters.templating``), never through a path
next to the code or in the working directory, so an installed wheel renders what the checkout does.
"""
