"""The report: publication tables (LaTeX/Markdown/CSV), figures and a standalone report.tex."""
