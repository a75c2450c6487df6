from modelgate_client.cli.main import main

main(prog_name="modelgate")
